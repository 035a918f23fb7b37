// The interface's state and the one place commands are sent from. Components read `app`
// and call `run(...)`; events from the shell update `app` in `onEvent`.

import type {
  AccountView,
  AppState,
  Area,
  CallView,
  Commands,
  DeskEvent,
  ErrorView,
  RunView,
  SoundTest,
  Text,
} from "./bindings";
import { i18n } from "./i18n.svelte";

export type Page = "work" | "history" | "contacts" | "scripts" | "settings" | "reports";

/** A password prompt for a guarded area, and what to retry once it is given. */
export interface Guard {
  area: Area;
  retry: () => Promise<unknown>;
  cancel: () => void;
}

export const app = $state({
  state: null as AppState | null,
  calls: [] as CallView[],
  run: null as RunView | null,
  page: "work" as Page,
  notices: [] as Text[],
  error: null as ErrorView | null,
  guard: null as Guard | null,
  registrations: {} as Record<string, AccountView>,
  /** Bumped when the history may have changed (a call or a run ended). */
  historyVersion: 0,
  /** The settings' sound test: which one runs (none when stopped) and why it last ended. */
  soundTest: { running: null as SoundTest | null, ended: null as Text | null },
  /** The microphone's level in dBFS during the microphone test (−96: silence). */
  micLevel: { rms: -96, peak: -96 },
});

let commands: Commands | null = null;

/** Set the command sender (Tauri's `invoke`, or a fake in tests). */
export function setCommands(c: Commands): void {
  commands = c;
}

/** The command sender. */
export function api(): Commands {
  if (!commands) throw new Error("commands not set");
  return commands;
}

function isError(e: unknown): e is ErrorView {
  return typeof e === "object" && e !== null && "code" in e && "message" in e;
}

/**
 * Send a command. A refusal for want of a manager's or administrator's password opens the
 * password prompt and retries once it is given; any other error is shown and returned
 * as `undefined`.
 */
export async function run<T>(f: (c: Commands) => Promise<T>): Promise<T | undefined> {
  try {
    const out = await f(api());
    app.error = null;
    return out;
  } catch (e) {
    if (isError(e) && (e.code === "desk.needs_admin" || e.code === "desk.needs_manager")) {
      return new Promise<T | undefined>((resolve) => {
        app.guard = {
          area: e.code === "desk.needs_admin" ? "admin" : "manager",
          retry: async () => resolve(await run(f)),
          cancel: () => resolve(undefined),
        };
      });
    }
    app.error = isError(e)
      ? e
      : { code: "ui.unexpected", message: { en: String(e), ru: String(e) } };
    return undefined;
  }
}

/** Take in a fresh app state. */
export function applyState(s: AppState): void {
  app.state = s;
  app.calls = s.calls;
  app.run = s.run ?? null;
  i18n.lang = s.lang;
  app.notices = [...s.notices];
}

function upsertCall(c: CallView): void {
  const i = app.calls.findIndex((x) => x.id === c.id);
  if (i >= 0) app.calls[i] = c;
  else {
    // Only the latest ended call stays on screen (for its summary).
    app.calls = [...app.calls.filter((x) => x.phase !== "ended"), c];
  }
  if (c.phase === "ended") app.historyVersion++;
}

/** Apply an event pushed by the shell. */
export function onEvent(e: DeskEvent): void {
  switch (e.type) {
    case "call":
    case "incoming":
      upsertCall(e.call);
      break;
    case "run":
      app.run = e.run ?? null;
      app.historyVersion++;
      break;
    case "registration":
      app.registrations[e.account.name] = e.account;
      break;
    case "status":
      if (app.state) app.state.status = e.status;
      break;
    case "notice":
      app.notices = [...app.notices, e.text];
      break;
    case "sound_test":
      app.soundTest = { running: e.running ? e.test : null, ended: e.ended ?? null };
      if (!e.running) app.micLevel = { rms: -96, peak: -96 };
      break;
    case "sound_level":
      app.micLevel = { rms: e.rms_dbfs, peak: e.peak_dbfs };
      break;
  }
}

/** The call ringing for the agent, if any. */
export function ringing(): CallView | undefined {
  return app.calls.find((c) => c.incoming && c.phase === "ringing");
}

/** The call in progress (the latest one not ended). */
export function current(): CallView | undefined {
  return [...app.calls].reverse().find((c) => c.phase !== "ended");
}
