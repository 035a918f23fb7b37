// Entry point: wire the generated, typed commands to Tauri's IPC, listen for the shell's
// events, and mount the interface.
import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import { mount } from "svelte";
import App from "./components/App.svelte";
import { EVENT, makeCommands, type DeskEvent } from "./lib/bindings";
import { onEvent, setCommands } from "./lib/app.svelte";
import "./styles.css";

// Uncaught errors are kept for the end-to-end tests to report (and shown in the console).
const errors: string[] = [];
(window as unknown as { __callhelperErrors: string[] }).__callhelperErrors = errors;
window.addEventListener("error", (e) => errors.push(String(e.error?.stack ?? e.message)));
window.addEventListener("unhandledrejection", (e) => errors.push(String(e.reason?.stack ?? e.reason)));

const commands = makeCommands((cmd, args) => invoke(cmd, args));
setCommands(commands);
void listen<DeskEvent>(EVENT, (e) => onEvent(e.payload));

mount(App, {
  target: document.getElementById("app")!,
  props: { onReady: () => void commands.uiReady() },
});
