// jsdom lacks these browser APIs the interface touches.
globalThis.requestAnimationFrame ??= ((cb: FrameRequestCallback) =>
  setTimeout(() => cb(performance.now()), 0)) as typeof requestAnimationFrame;
globalThis.cancelAnimationFrame ??= ((id: number) => clearTimeout(id)) as typeof cancelAnimationFrame;

import { cleanup } from "@testing-library/svelte";
import { afterEach } from "vitest";

// Each test starts from an empty page.
afterEach(() => cleanup());
