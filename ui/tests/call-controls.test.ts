// Call controls in Node: which controls a call offers in each state, that each sends the
// right command for the right call, the timer, the quality badge and the keyboard.
import { fireEvent, render, screen, waitFor } from "@testing-library/svelte";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import CallControls from "../src/components/CallControls.svelte";
import { setCommands } from "../src/lib/app.svelte";
import { i18n } from "../src/lib/i18n.svelte";
import { callView, fakeShell } from "./fixtures";

describe("call controls", () => {
  beforeEach(() => {
    i18n.lang = "en";
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it("offers answer and decline for a ringing incoming call, and nothing else", async () => {
    const { sent, commands } = fakeShell(() => null);
    setCommands(commands);
    render(CallControls, { props: { call: callView({ id: 5, incoming: true, phase: "ringing", answered_at: null }) } });
    expect(screen.getByTestId("call-phase").textContent).toBe("Ringing…");
    expect(screen.queryByTestId("hang-up")).toBeNull();
    expect(screen.queryByTestId("hold")).toBeNull();
    await fireEvent.click(screen.getByTestId("answer"));
    expect(sent).toEqual([{ cmd: "answer", args: { call: 5 } }]);
  });

  it("shows who is talking, the timer from the answer and the quality badge", () => {
    vi.useFakeTimers();
    const now = Date.now();
    setCommands(fakeShell(() => null).commands);
    render(CallControls, {
      props: {
        call: callView({
          answered_at: now - 61_000,
          quality: { mos: 4.3, jitter_ms: 3, loss_percent: 0, rtt_ms: 20, grade: "good" },
        }),
      },
    });
    expect(screen.getByTestId("call-who").textContent).toBe("Ирина Смирнова");
    expect(screen.getByTestId("call-timer").textContent).toBe("1:01");
    vi.advanceTimersByTime(2000);
    expect(screen.getByTestId("quality").textContent).toContain("good (4.3)");
  });

  it("sends hold, mute, record and hang-up for its own call", async () => {
    const { sent, commands } = fakeShell((cmd) => (cmd === "mute" ? callView({ id: 9, muted: true }) : null));
    setCommands(commands);
    render(CallControls, { props: { call: callView({ id: 9 }) } });
    await fireEvent.click(screen.getByTestId("hold"));
    await fireEvent.click(screen.getByTestId("mute"));
    await fireEvent.click(screen.getByTestId("record"));
    await fireEvent.click(screen.getByTestId("hang-up"));
    await waitFor(() => expect(sent.length).toBe(4));
    expect(sent).toEqual([
      { cmd: "hold", args: { call: 9, on: true } },
      { cmd: "mute", args: { call: 9, on: true } },
      { cmd: "record", args: { call: 9, on: true } },
      { cmd: "hang_up", args: { call: 9 } },
    ]);
  });

  it("resumes a held call and cannot record when recording is off", async () => {
    const { sent, commands } = fakeShell(() => null);
    setCommands(commands);
    render(CallControls, { props: { call: callView({ phase: "on_hold", can_record: false }) } });
    expect(screen.getByTestId("hold").textContent).toContain("Resume");
    expect((screen.getByTestId("record") as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.click(screen.getByTestId("hold"));
    expect(sent[0]).toEqual({ cmd: "hold", args: { call: 1, on: false } });
  });

  it("sends DTMF from the keypad and transfers blind", async () => {
    const { sent, commands } = fakeShell(() => null);
    setCommands(commands);
    render(CallControls, { props: { call: callView() } });
    await fireEvent.click(screen.getByTestId("keypad"));
    const pad = screen.getByTestId("dtmf-pad");
    await fireEvent.click(pad.querySelector("[data-digit='5']")!);
    await fireEvent.click(pad.querySelector("[data-digit='#']")!);
    await fireEvent.click(screen.getByTestId("transfer"));
    const form = screen.getByTestId("transfer-form");
    await fireEvent.input(form.querySelector("input")!, { target: { value: "+74951112233" } });
    await fireEvent.submit(form);
    await waitFor(() => expect(sent.length).toBe(3));
    expect(sent).toEqual([
      { cmd: "dtmf", args: { call: 1, digits: "5" } },
      { cmd: "dtmf", args: { call: 1, digits: "#" } },
      { cmd: "transfer", args: { call: 1, to: "+74951112233" } },
    ]);
  });

  it("takes its keys only when it is the current call", async () => {
    const { sent, commands } = fakeShell(() => null);
    setCommands(commands);
    const { rerender } = render(CallControls, { props: { call: callView(), current: false } });
    await fireEvent.keyDown(window, { key: "m", ctrlKey: true });
    expect(sent.length).toBe(0);
    await rerender({ call: callView(), current: true });
    await fireEvent.keyDown(window, { key: "m", ctrlKey: true });
    await fireEvent.keyDown(window, { key: "h", ctrlKey: true, altKey: true });
    await waitFor(() => expect(sent.length).toBe(2));
    expect(sent.map((s) => s.cmd)).toEqual(["mute", "hang_up"]);
  });

  it("shows why an ended call ended and offers no controls", () => {
    setCommands(fakeShell(() => null).commands);
    render(CallControls, { props: { call: callView({ phase: "ended", ended: { en: "the line is busy", ru: "линия занята" } }) } });
    expect(screen.getByText("the line is busy")).toBeTruthy();
    expect(screen.queryByTestId("hang-up")).toBeNull();
    expect(screen.queryByTestId("call-timer")).toBeNull();
  });
});
