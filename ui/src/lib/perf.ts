// Key → paint timing: from the key event to the first frame painted after the screen
// changed. `requestAnimationFrame` runs just before the frame is painted; a message posted
// from it arrives once that frame is done, which is when the agent sees the new step.

declare global {
  interface Window {
    __callhelperPerf?: { keyToPaint: number[]; command?: number[] };
  }
}

function samples(): number[] {
  window.__callhelperPerf ??= { keyToPaint: [] };
  return window.__callhelperPerf.keyToPaint;
}

/** Record how long a script command took (IPC, the core, the store's write), in ms. */
export function markCommand(ms: number): void {
  window.__callhelperPerf ??= { keyToPaint: [] };
  const list = (window.__callhelperPerf.command ??= []);
  list.push(ms);
  if (list.length > 1000) list.shift();
}

/** Record the time from `start` (a `KeyboardEvent.timeStamp`) to the next painted frame. */
export function markPainted(start: number): void {
  if (typeof requestAnimationFrame !== "function") return;
  requestAnimationFrame(() => {
    const ch = new MessageChannel();
    ch.port1.onmessage = () => {
      const list = samples();
      list.push(performance.now() - start);
      if (list.length > 1000) list.shift();
    };
    ch.port2.postMessage(0);
  });
}
