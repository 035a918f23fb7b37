// The password guard in Node: a refused command opens the prompt, a wrong password is said
// and cleared, the right one runs the command again and hands its answer back, and Escape
// gives up (the caller gets nothing).
import { fireEvent, render, screen, waitFor } from "@testing-library/svelte";
import { beforeEach, describe, expect, it } from "vitest";
import GuardHost from "./GuardHost.svelte";
import { app, run, setCommands } from "../src/lib/app.svelte";
import { fakeShell, freshApp, reject } from "./fixtures";

/** A shell whose `settings` needs the administrator until `elevate` got `good`. */
function guardedShell() {
  let elevated = false;
  return fakeShell((cmd, args) => {
    if (cmd === "elevate") {
      if (args?.password === "good") {
        elevated = true;
        return null;
      }
      return reject("store.bad_password", "Wrong login or password.", "Неверный логин или пароль.");
    }
    if (cmd === "settings") {
      return elevated ? { retention_days: 30 } : reject("desk.needs_admin", "Administrators only.");
    }
    return null;
  });
}

describe("password prompt", () => {
  beforeEach(freshApp);

  it("runs the refused command again once the right password is given", async () => {
    const { sent, commands } = guardedShell();
    setCommands(commands);
    const answer = run((c) => c.settings());
    await waitFor(() => expect(app.guard?.area).toBe("admin"));
    render(GuardHost);

    await fireEvent.input(screen.getByTestId("guard-login"), { target: { value: "admin" } });
    await fireEvent.input(screen.getByTestId("guard-password"), { target: { value: "bad" } });
    await fireEvent.submit(screen.getByTestId("guard-password").closest("form")!);
    await waitFor(() => expect(screen.getByRole("alert").textContent).toBe("Wrong login or password."));
    expect((screen.getByTestId("guard-password") as HTMLInputElement).value).toBe("");
    expect(app.guard).not.toBeNull();

    await fireEvent.input(screen.getByTestId("guard-password"), { target: { value: "good" } });
    await fireEvent.submit(screen.getByTestId("guard-password").closest("form")!);
    expect(await answer).toEqual({ retention_days: 30 });
    expect(app.guard).toBeNull();
    expect(screen.queryByTestId("guard")).toBeNull();
    expect(sent.map((s) => s.cmd)).toEqual(["settings", "elevate", "elevate", "settings"]);
    expect(sent[2].args).toEqual({ area: "admin", login: "admin", password: "good" });
  });

  it("Escape gives up: the caller gets nothing and no command is sent again", async () => {
    const { sent, commands } = guardedShell();
    setCommands(commands);
    const answer = run((c) => c.settings());
    await waitFor(() => expect(app.guard).not.toBeNull());
    render(GuardHost);
    await fireEvent.keyDown(screen.getByTestId("guard"), { key: "Escape" });
    expect(await answer).toBeUndefined();
    expect(app.guard).toBeNull();
    expect(sent.map((s) => s.cmd)).toEqual(["settings"]);
  });
});
