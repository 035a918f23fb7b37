import type { Lang } from "./bindings";
import { strings, t, type Key } from "./i18n.svelte";

/** `mm:ss` or `h:mm:ss` for a duration in seconds. */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** A local date and time for lists. */
export function when(ms: number, lang: Lang): string {
  return new Date(ms).toLocaleString(lang === "ru" ? "ru-RU" : "en-GB", {
    day: "2-digit",
    month: "2-digit",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

/** An outcome for people: the built-in ones translated, a script's own shown as its id. */
export function outcomeLabel(id: string): string {
  return label("outcome_", id);
}

/** How a run ended (`terminal`, `remote_hangup`, …) for people; an unknown one as its id. */
export function reasonLabel(id: string): string {
  return label("reason_", id);
}

function label(prefix: string, id: string): string {
  const key = prefix + id;
  return key in strings ? t(key as Key) : id;
}
