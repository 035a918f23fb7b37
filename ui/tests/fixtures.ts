// Views as the core sends them, and a fake shell that records the commands it receives.
import type { CallView, RunView, StepView } from "../src/lib/bindings";
import { makeCommands } from "../src/lib/bindings";
import { app } from "../src/lib/app.svelte";
import { i18n } from "../src/lib/i18n.svelte";

/** Before each test: English, no password prompt open, no error shown. */
export function freshApp(): void {
  i18n.lang = "en";
  app.guard = null;
  app.error = null;
}

export function step(over: Partial<StepView> = {}): StepView {
  return {
    step: "intro",
    title: "Greeting",
    say: {
      text: "Good afternoon! Who looks after the books at Romashka?",
      segments: [
        { text: "Good afternoon! Who looks after the books at " },
        { text: "Romashka", var: "contact.company" },
        { text: "?" },
      ],
    },
    hint: { text: "Calm and friendly.", segments: [{ text: "Calm and friendly." }] },
    fields: [],
    answers: [
      { id: "a1", label: "Put through", key: "1" },
      { id: "a2", label: "Out of office", key: "2" },
    ],
    objections: [{ id: "expensive", label: "Too expensive", key: "F1" }],
    can_continue: false,
    can_go_back: false,
    ...over,
  };
}

export function runView(view: StepView, over: Partial<RunView> = {}): RunView {
  return {
    id: 7,
    call: 1,
    file: "b2b-cold-call.en.yaml",
    script: "Cold call",
    version: 3,
    view,
    path: [{ step: view.step, title: view.title, answer: null, objection: null }],
    outcomes: [
      { id: "success", label: "Success" },
      { id: "callback", label: "Callback" },
    ],
    notes: [],
    unforeseen: [],
    ended: null,
    callback_at: null,
    ...over,
  };
}

export function callView(over: Partial<CallView> = {}): CallView {
  return {
    id: 1,
    incoming: false,
    number: "+74950000000",
    contact: {
      id: 3,
      name: "Ирина Смирнова",
      phone: "+74950000000",
      email: "",
      company: "ООО «Ромашка»",
      blocked: false,
      consent: null,
    },
    phase: "connected",
    started_at: Date.now() - 65_000,
    answered_at: Date.now() - 61_000,
    muted: false,
    recording: false,
    can_record: true,
    demo: true,
    ended: null,
    quality: null,
    warning: null,
    ...over,
  } as CallView;
}

export interface Sent {
  cmd: string;
  args?: Record<string, unknown>;
}

/** Commands whose answers come from `answer(cmd, args)`; every command is recorded. */
export function fakeShell(answer: (cmd: string, args?: Record<string, unknown>) => unknown) {
  const sent: Sent[] = [];
  const commands = makeCommands(async (cmd, args) => {
    sent.push({ cmd, args });
    const out = answer(cmd, args);
    if (out && typeof out === "object" && "__reject" in out) throw (out as { __reject: unknown }).__reject;
    return out;
  });
  return { sent, commands };
}

/** An answer of the fake shell that refuses the command with an error. */
export function reject(code: string, en: string, ru = en) {
  return { __reject: { code, message: { en, ru } } };
}
