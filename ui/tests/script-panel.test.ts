// The script panel in Node: hotkeys reach the core as the right actions, the next step is
// shown only once the core answered (stored), typing in a field never triggers answers,
// field errors show under the field, and the run ends with an outcome and a callback.
import { fireEvent, render, screen, waitFor } from "@testing-library/svelte";
import { beforeEach, describe, expect, it } from "vitest";
import ScriptPanel from "../src/components/ScriptPanel.svelte";
import { app, setCommands } from "../src/lib/app.svelte";
import { i18n } from "../src/lib/i18n.svelte";
import { fakeShell, reject, runView, step } from "./fixtures";

const second = step({
  step: "lpr_intro",
  title: "Meeting the decision maker",
  say: { text: "Hello!", segments: [{ text: "Hello!" }] },
  hint: null,
  answers: [{ id: "b1", label: "Happy to listen", key: "1" }],
  can_go_back: true,
  fields: [
    { id: "employees", label: "Employees", type: "number", required: true, value: null },
    {
      id: "accounting",
      label: "How they keep the books",
      type: "choice",
      required: false,
      options: [{ value: "in_house", label: "In-house" }, "outsourced"],
    },
  ],
});

describe("script panel", () => {
  beforeEach(() => {
    i18n.lang = "en";
    app.run = runView(step());
    app.error = null;
  });

  it("shows the line with its placeholders, the hint, answers and objections", () => {
    setCommands(fakeShell(() => null).commands);
    render(ScriptPanel, { props: { scripts: [] } });
    expect(screen.getByTestId("step-title").textContent).toBe("Greeting");
    const filled = screen.getByText("Romashka");
    expect(filled.tagName).toBe("MARK");
    expect(filled.getAttribute("title")).toBe("contact.company");
    expect(screen.getByTestId("hint").textContent).toContain("Calm and friendly.");
    const answers = screen.getByTestId("answers").querySelectorAll("button");
    expect([...answers].map((b) => b.textContent?.trim())).toEqual(["1 Put through", "2 Out of office"]);
    expect(screen.getByTestId("objections").textContent).toContain("F1 Too expensive");
    expect((screen.getByTestId("back") as HTMLButtonElement).disabled).toBe(true);
  });

  it("sends the answer of a digit key and shows the next step only when the core has answered", async () => {
    let release: (v: unknown) => void = () => {};
    const { sent, commands } = fakeShell((cmd) => {
      if (cmd === "act") return new Promise((r) => (release = r));
      return null;
    });
    setCommands(commands);
    render(ScriptPanel, { props: { scripts: [] } });
    await fireEvent.keyDown(window, { key: "1" });
    expect(sent).toEqual([{ cmd: "act", args: { action: { type: "answer", key: "1" } } }]);
    // A second key while the first is being stored is ignored, not queued.
    await fireEvent.keyDown(window, { key: "2" });
    expect(sent.length).toBe(1);
    expect(screen.getByTestId("step-title").textContent).toBe("Greeting");
    // A quick answer changes nothing on screen until the next step; a slow one (over
    // 150 ms) shows the buttons as waiting.
    const answer = screen.getByTestId("answers").querySelector("button") as HTMLButtonElement;
    expect(answer.disabled).toBe(false);
    await waitFor(() => expect(answer.disabled).toBe(true), { timeout: 1000 });
    release(runView(second, { path: [{ step: "intro", title: "Greeting", answer: "Put through", objection: null }, { step: "lpr_intro", title: "Meeting the decision maker", answer: null, objection: null }] }));
    await waitFor(() => expect(screen.getByTestId("step-title").textContent).toBe("Meeting the decision maker"));
    const path = screen.getByTestId("path").querySelectorAll("li");
    expect(path.length).toBe(2);
    const next = screen.getByTestId("answers").querySelector("button") as HTMLButtonElement;
    await waitFor(() => expect(next.disabled).toBe(false));
    expect(path[0].textContent).toContain("Put through");
  });

  it("opens an objection with its F-key and goes back with Alt+Left", async () => {
    app.run = runView(step({ can_go_back: true }));
    const { sent, commands } = fakeShell(() => app.run);
    setCommands(commands);
    render(ScriptPanel, { props: { scripts: [] } });
    await fireEvent.keyDown(window, { key: "F1" });
    await waitFor(() => expect(sent.length).toBe(1));
    // Keys wait for the stored answer: Alt+Left is taken once the first answer is in.
    await waitFor(async () => {
      await fireEvent.keyDown(window, { key: "ArrowLeft", altKey: true });
      expect(sent.length).toBe(2);
    });
    expect(sent.map((s) => s.args)).toEqual([
      { action: { type: "answer", key: "F1" } },
      { action: { type: "back" } },
    ]);
  });

  it("sends a value typed just before Enter first, then the step: none is dropped", async () => {
    app.run = runView(step({ ...second, can_continue: true, answers: [] }));
    let release: (v: unknown) => void = () => {};
    const { sent, commands } = fakeShell((cmd, args) => {
      const a = (args?.action ?? {}) as { type?: string };
      if (cmd === "act" && a.type === "set") return new Promise((r) => (release = r));
      return app.run;
    });
    setCommands(commands);
    render(ScriptPanel, { props: { scripts: [] } });
    const input = screen.getByTestId("field-employees") as HTMLInputElement;
    await fireEvent.input(input, { target: { value: "300" } });
    await fireEvent.change(input);
    const choice = screen.getByTestId("field-accounting") as HTMLSelectElement;
    await fireEvent.change(choice, { target: { value: "in_house" } });
    await fireEvent.keyDown(window, { key: "Enter" });
    // The first value is on its way; the second value and the step wait their turn.
    expect(sent.map((s) => s.args)).toEqual([{ action: { type: "set", field: "employees", input: "300" } }]);
    release(app.run);
    await waitFor(() => expect(sent.length).toBe(2));
    release(app.run);
    await waitFor(() => expect(sent.length).toBe(3));
    expect(sent.map((s) => s.args)).toEqual([
      { action: { type: "set", field: "employees", input: "300" } },
      { action: { type: "set", field: "accounting", input: "in_house" } },
      { action: { type: "continue" } },
    ]);
  });

  it("ignores answer keys typed into a field, and shows the core's refusal under it", async () => {
    app.run = runView(second);
    const { sent, commands } = fakeShell((cmd, args) => {
      const a = (args?.action ?? {}) as { type?: string; input?: string };
      if (cmd === "act" && a.type === "set" && a.input === "lots") return reject("run.refused", "Employees: not a number");
      return app.run;
    });
    setCommands(commands);
    render(ScriptPanel, { props: { scripts: [] } });
    const input = screen.getByTestId("field-employees") as HTMLInputElement;
    input.focus();
    await fireEvent.keyDown(input, { key: "1" });
    expect(sent.length).toBe(0);
    await fireEvent.input(input, { target: { value: "lots" } });
    await fireEvent.change(input);
    await waitFor(() => expect(screen.getByRole("alert").textContent).toBe("Employees: not a number"));
    expect(input.getAttribute("aria-invalid")).toBe("true");
    const choice = screen.getByTestId("field-accounting") as HTMLSelectElement;
    expect([...choice.options].map((o) => o.value)).toEqual(["", "in_house", "outsourced"]);
    await fireEvent.change(choice, { target: { value: "in_house" } });
    await waitFor(() =>
      expect(sent.at(-1)?.args).toEqual({ action: { type: "set", field: "accounting", input: "in_house" } }),
    );
  });

  it("continues with Enter on a step without answers", async () => {
    app.run = runView(step({ answers: [], can_continue: true }));
    const { sent, commands } = fakeShell(() => app.run);
    setCommands(commands);
    render(ScriptPanel, { props: { scripts: [] } });
    await fireEvent.keyDown(window, { key: "Enter" });
    await waitFor(() => expect(sent[0]?.args).toEqual({ action: { type: "continue" } }));
  });

  it("ends with a callback outcome and its time, then shows where it stopped", async () => {
    const { sent, commands } = fakeShell(() =>
      runView(step({ finished: { outcome: "callback", outcome_label: "Callback", reason: "agent_ended" } }), {
        ended: { en: "You ended the run at «Greeting» — Callback. Everything is saved.", ru: "…" },
        callback_at: "2030-01-02T10:00",
      }),
    );
    setCommands(commands);
    render(ScriptPanel, { props: { scripts: [] } });
    await fireEvent.change(screen.getByTestId("outcome"), { target: { value: "callback" } });
    await fireEvent.input(screen.getByTestId("callback-at"), { target: { value: "2030-01-02T10:00" } });
    await fireEvent.click(screen.getByTestId("end-run"));
    await waitFor(() => expect(screen.getByTestId("finished").textContent).toContain("Callback"));
    expect(sent[0].args).toEqual({ action: { type: "end", outcome: "callback", callback_at: "2030-01-02T10:00" } });
    expect(screen.getByTestId("finished").textContent).toContain("at «Greeting»");
    // A finished run takes no answer keys.
    await fireEvent.keyDown(window, { key: "1" });
    expect(sent.length).toBe(1);
  });

  it("speaks Russian when the interface does", () => {
    i18n.lang = "ru";
    setCommands(fakeShell(() => null).commands);
    render(ScriptPanel, { props: { scripts: [] } });
    expect(screen.getByText("Ответ клиента")).toBeTruthy();
    expect(screen.getByTestId("back").textContent).toContain("Назад");
  });
});
