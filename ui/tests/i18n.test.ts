// Every string of the interface exists in English and Russian, with the same placeholders.
import { describe, expect, it } from "vitest";
import { strings } from "../src/lib/i18n.svelte";

describe("interface strings", () => {
  it("are all in both languages with matching placeholders", () => {
    const keys = Object.keys(strings) as (keyof typeof strings)[];
    expect(keys.length).toBeGreaterThan(100);
    for (const k of keys) {
      const { en, ru } = strings[k];
      expect(en.trim(), `${k} (en)`).not.toBe("");
      expect(ru.trim(), `${k} (ru)`).not.toBe("");
      const vars = (s: string) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
      expect(vars(ru), k).toEqual(vars(en));
    }
  });

  it("are used by the components that exist (no key is orphaned)", async () => {
    const files = import.meta.glob("../src/**/*.{svelte,ts}", { query: "?raw", import: "default", eager: true });
    const source = Object.entries(files)
      .filter(([f]) => !f.endsWith("i18n.svelte.ts"))
      .map(([, s]) => s as string)
      .join("\n");
    const unused = Object.keys(strings).filter((k) => {
      if (source.includes(`"${k}"`)) return false;
      // Keys built from a prefix: t(("phase_" + call.phase) as ...).
      const prefix = k.replace(/_[^_]+$/, "_");
      return !source.includes(`"${prefix}"`) && !source.includes(`"${k.split("_")[0]}_"`);
    });
    expect(unused).toEqual([]);
  });
});
