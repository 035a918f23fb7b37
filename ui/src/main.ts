// Entry point: wire the generated, typed commands to Tauri's IPC, listen for the shell's
// events, and mount the interface.
import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import { mount } from "svelte";
import App from "./components/App.svelte";
import { EVENT, makeCommands, type DeskEvent } from "./lib/bindings";
import { onEvent, setCommands } from "./lib/app.svelte";
import "./styles.css";

const commands = makeCommands((cmd, args) => invoke(cmd, args));
setCommands(commands);
void listen<DeskEvent>(EVENT, (e) => onEvent(e.payload));

mount(App, {
  target: document.getElementById("app")!,
  props: { onReady: () => void commands.uiReady() },
});
