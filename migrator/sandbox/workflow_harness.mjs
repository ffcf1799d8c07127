// The sandbox's stand-in for Kinde's workflow runtime: runs one bundled workflow (ESM) for one event
// and prints what it decided as one JSON line on stdout.
//
// Kinde runs workflows in goja with Go bindings on globalThis.kinde; there is no official local
// runner (its workflows-runtime supplies no bindings). Here the bindings call the sandbox's own APIs
// over loopback. Like goja's, kinde.fetch is synchronous (@kinde/infrastructure's getM2MToken reads
// `.json` off its result without awaiting), so a worker thread does the HTTP and the main thread
// waits on Atomics. Its result carries `json` and `text` only: Kinde documents no status.
//
// stdin: {"bundle": path, "event": {...}, "env": {KEY: {"value", "isSecret"}}, "timeoutMs": n}
// stdout: {"outcome": "completed"|"refused"|"denied"|"failed", "field"?, "message"?, "error"?}
// The workflow's console output goes to stderr, which the sandbox keeps as the workflow's log.
import { Worker, MessageChannel, receiveMessageOnPort } from "node:worker_threads";
import { pathToFileURL } from "node:url";

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
}));

const worker = new Worker(
  `const { parentPort } = require("node:worker_threads");
   parentPort.on("message", async ({ signal, port, url, init }) => {
     let result;
     try {
       const response = await fetch(url, init);
       result = { text: await response.text() };
     } catch (error) {
       result = { error: String((error && error.message) || error) };
     }
     port.postMessage(result);
     Atomics.store(signal, 0, 1);
     Atomics.notify(signal, 0);
   });`,
  { eval: true },
);
worker.unref();

function syncFetch(url, options = {}) {
  const headers = { ...(options.headers || {}) };
  let body = options.body;
  if (body instanceof URLSearchParams) {
    body = body.toString();
    if (!Object.keys(headers).some((h) => h.toLowerCase() === "content-type")) {
      headers["content-type"] = "application/x-www-form-urlencoded";
    }
  } else if (body !== undefined && body !== null && typeof body !== "string") {
    body = JSON.stringify(body);
  }
  const signal = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  worker.postMessage({ signal, port: port2, url, init: { method: options.method || "GET", headers, body } }, [port2]);
  Atomics.wait(signal, 0, 0, input.timeoutMs || 30000);
  const reply = receiveMessageOnPort(port1);
  port1.close();
  if (!reply) throw new Error(`kinde.fetch: no answer from ${new URL(url).host}`);
  if (reply.message.error) throw new Error(`kinde.fetch: ${reply.message.error}`);
  let json;
  try {
    json = JSON.parse(reply.message.text);
  } catch {
    json = undefined;
  }
  return options.responseFormat === "text" ? { text: reply.message.text } : { json, text: reply.message.text };
}

let decision = null;
const decide = (value) => {
  if (!decision) decision = value;
};
const cache = new Map();
globalThis.kinde = {
  env: { get: (key) => input.env[key] },
  fetch: syncFetch,
  widget: { invalidateFormField: (field, message) => decide({ outcome: "refused", field, message }) },
  auth: { denyAccess: (message) => decide({ outcome: "denied", message }) },
  cache: {
    jwtToken: async (name, { onMissingOrExpired }) => {
      if (!cache.has(name)) cache.set(name, await onMissingOrExpired());
      return cache.get(name);
    },
  },
};
for (const level of ["log", "info", "warn", "error", "debug", "trace"]) {
  console[level] = (...args) =>
    process.stderr.write(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" ") + "\n");
}

let result;
try {
  const workflow = await import(pathToFileURL(input.bundle).href);
  await workflow.default(input.event);
  result = decision || { outcome: "completed" };
} catch (error) {
  result = decision || { outcome: "failed", error: String((error && error.message) || error) };
}
process.stdout.write(JSON.stringify(result) + "\n");
process.exit(0);
