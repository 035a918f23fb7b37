import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";

// The interface is served from the files Tauri embeds (`dist/`); in development Tauri
// loads this dev server instead (127.0.0.1 only).
export default defineConfig({
  plugins: [svelte()],
  clearScreen: false,
  server: { host: "127.0.0.1", port: 5173, strictPort: true },
  build: {
    target: "safari15",
    outDir: "dist",
    emptyOutDir: true,
    // One small bundle: no source maps or preload polyfill in the shipped app.
    sourcemap: false,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  resolve: process.env.VITEST ? { conditions: ["browser"] } : undefined,
  test: {
    environment: "jsdom",
    include: ["tests/**/*.test.ts"],
    setupFiles: ["tests/setup.ts"],
  },
} as never);
