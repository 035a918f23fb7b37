// The Reports page in Node: the filters travel as the report's arguments, the figures of a
// view fill the table, the export writes where the path field says and tells how many
// rows, a refusal for want of a manager opens the password prompt, and both languages.
import { fireEvent, render, screen, waitFor, within } from "@testing-library/svelte";
import { beforeEach, describe, expect, it } from "vitest";
import ReportsPage from "../src/components/ReportsPage.svelte";
import type { ExportSummary, Report } from "../src/lib/bindings";
import { app, setCommands } from "../src/lib/app.svelte";
import { i18n } from "../src/lib/i18n.svelte";
import { fakeShell, freshApp, reject } from "./fixtures";

function report(): Report {
  const time = (median_ms: number, p90_ms: number) => ({ mean_ms: median_ms, median_ms, p90_ms });
  // Titles from the script's file for two of the three steps: the third shows by its id.
  const titles = [{ script_id: "b2b-cold-call-en", version: 3, steps: { intro: "Greeting", lpr_intro: "Decision maker" } }];
  return {
    titles,
    analytics: {
      scripts: [
        {
          script_id: "b2b-cold-call-en",
          version: 3,
          name: "Cold call",
          runs: 4,
          outcomes: { success: 1, refusal: 3 },
          conversion: 0.25,
          end_reasons: { terminal: 3, remote_hangup: 1 },
          duration: time(61_000, 95_000),
          steps: [
            { step: "intro", reached: 4, left: 3, ended_here: 1, answers: {}, time: time(4_500, 9_000) },
            { step: "lpr_intro", reached: 3, left: 0, ended_here: 3, answers: {}, time: time(12_000, 30_000) },
            { step: "price", objection: "expensive", reached: 1, left: 1, ended_here: 0, answers: {}, time: time(2_000, 2_000) },
          ],
        },
      ],
      unfinished: 2,
      blocked_left_out: 1,
    },
  };
}

const written: ExportSummary = { path: "/home/m/Documents/runs.xlsx", rows: 4, columns: 20, blocked_left_out: 1 };

/** The shell's answers by command; every command is recorded. */
const shell = () =>
  fakeShell(
    (cmd) =>
      ({
        report: report(),
        default_export_path: "/home/m/Documents/callhelper-analytics-2026-11-26.csv",
        export_report: written,
      })[cmd] ?? null,
  );

describe("reports page", () => {
  beforeEach(freshApp);

  it("sends the filters as the report's arguments and shows the figures per step", async () => {
    const { sent, commands } = shell();
    setCommands(commands);
    render(ReportsPage, { props: { scripts: [{ file: "b.yaml", id: "b2b-cold-call-en", name: "Cold call", version: 3, ok: true, problems: [] }] } });

    await waitFor(() => expect(screen.getAllByTestId("report-step")).toHaveLength(3));
    expect(sent[0]).toEqual({
      cmd: "report",
      args: { filter: { from: null, to: null, script: null, outcome: null, agent: null, without_personal_data: true } },
    });
    expect(screen.getByTestId("report-runs").textContent).toBe("4");
    expect(screen.getByTestId("report-conversion").textContent).toBe("25.0 %");
    expect(screen.getByTestId("report-outcomes").textContent).toBe("Refusal 3 · Success 1");
    expect(screen.getByTestId("report-left-out").textContent).toBe("Not counted: 2 unfinished run(s), 1 of blocked people.");
    const cells = (i: number) =>
      within(screen.getAllByTestId("report-step")[i]).getAllByRole("cell").map((c) => c.textContent);
    expect(cells(0)).toEqual(["4", "3", "1", "4.5 s", "9.0 s"]);
    expect(cells(1)).toEqual(["3", "0", "3", "12.0 s", "30.0 s"]);
    const row = (i: number) => within(screen.getAllByTestId("report-step")[i]).getByRole("rowheader").textContent?.replace(/\s+/g, " ").trim();
    expect(row(0)).toBe("Greeting intro");
    expect(row(1)).toBe("Decision maker lpr_intro");
    expect(row(2)).toBe("expensive price");
    const heads = within(screen.getByTestId("report-steps")).getAllByRole("columnheader").map((h) => h.textContent);
    expect(heads).toEqual(["Step", "Reached", "Went on", "Ended there", "Time, median", "Time, p90"]);

    await fireEvent.input(screen.getByTestId("report-from"), { target: { value: "2026-03-01" } });
    await fireEvent.input(screen.getByTestId("report-to"), { target: { value: "2026-03-31" } });
    await fireEvent.change(screen.getByTestId("report-script-filter"), { target: { value: "b2b-cold-call-en" } });
    await fireEvent.change(screen.getByTestId("report-outcome"), { target: { value: "success" } });
    await fireEvent.input(screen.getByTestId("report-agent"), { target: { value: " agent1 " } });
    await fireEvent.click(screen.getByTestId("report-show"));
    await waitFor(() => expect(sent.filter((s) => s.cmd === "report")).toHaveLength(2));
    const last = sent.filter((s) => s.cmd === "report")[1];
    expect(last.args).toEqual({
      filter: {
        from: new Date(2026, 2, 1).getTime(),
        to: new Date(2026, 3, 1).getTime(),
        script: "b2b-cold-call-en",
        outcome: "success",
        agent: "agent1",
        without_personal_data: true,
      },
    });
  });

  it("writes an export to the path given and says where and how many rows", async () => {
    const { sent, commands } = shell();
    setCommands(commands);
    render(ReportsPage);
    const path = screen.getByTestId("export-path") as HTMLInputElement;
    await waitFor(() => expect(path.value).toBe("/home/m/Documents/callhelper-analytics-2026-11-26.csv"));
    expect(sent.find((s) => s.cmd === "default_export_path")?.args).toEqual({ kind: "analytics_csv" });

    await fireEvent.change(screen.getByTestId("export-kind"), { target: { value: "runs_xlsx" } });
    await fireEvent.input(path, { target: { value: "/home/m/Documents/runs.xlsx" } });
    await fireEvent.click(screen.getByTestId("export-without-personal"));
    await fireEvent.click(screen.getByTestId("export-write"));
    await waitFor(() =>
      expect(screen.getByTestId("export-done").textContent).toBe(
        "Written: 4 row(s) to /home/m/Documents/runs.xlsx (1 of blocked people left out).",
      ),
    );
    const exp = sent.find((s) => s.cmd === "export_report");
    expect(exp?.args).toMatchObject({
      kind: "runs_xlsx",
      path: "/home/m/Documents/runs.xlsx",
      filter: { from: null, script: null, without_personal_data: true },
    });
  });

  it("without a manager's session the page asks for the password", async () => {
    setCommands(fakeShell((cmd) => (cmd === "report" ? reject("desk.needs_manager", "Managers only.") : "/x.csv")).commands);
    render(ReportsPage);
    await waitFor(() => expect(app.guard?.area).toBe("manager"));
    expect(screen.queryByTestId("report-script")).toBeNull();
    app.guard?.cancel();
  });

  it("speaks Russian", async () => {
    i18n.lang = "ru";
    setCommands(shell().commands);
    render(ReportsPage);
    await waitFor(() => expect(screen.getAllByTestId("report-step")).toHaveLength(3));
    expect(screen.getByRole("heading", { level: 1 }).textContent).toBe("Отчёты");
    const heads = within(screen.getByTestId("report-steps")).getAllByRole("columnheader").map((h) => h.textContent);
    expect(heads).toEqual(["Шаг", "Дошли", "Пошли дальше", "Закончили здесь", "Время, медиана", "Время, p90"]);
    expect(screen.getByTestId("report-outcomes").textContent).toBe("Отказ 3 · Успех 1");
    expect(screen.getAllByTestId("report-step")[0].textContent).toContain("4.5 с");
    expect(screen.getByTestId("export-write").textContent).toBe("Записать файл");
  });
});
