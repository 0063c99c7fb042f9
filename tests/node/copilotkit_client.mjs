// Drives the service with CopilotKit's own browser client (`CopilotKitCore` from
// @copilotkit/core, what <CopilotKit runtimeUrl=…> runs in the page), pointed at the
// service's `/copilotkit` routes, as a page would: /info, connect the thread, run, stop.
// Usage: node copilotkit_client.mjs <scenario> <runtime-url> <token|-> <agent-id> <thread-id>
//        [<refused token>]
// Scenarios: `chat` (connect, two runs), `reload` (a new client connects: what it shows
// before any run, then one more run), `stop` (stop during a slow answer), `refused` (the token stops being
// accepted: what the app's onError is told), `anonymous` (no token at all).
// Prints one JSON object.
import { CopilotKitCore } from "@copilotkit/core";

// The core talks to its runtime only in a browser (`typeof window`, to skip server-side
// rendering); Node has the rest of what it uses (fetch, streams, AbortController).
globalThis.window = globalThis;

const [scenario, runtimeUrl, token, agentId, threadId, refusedToken] = process.argv.slice(2);
const headers = token === "-" ? {} : { Authorization: `Bearer ${token}` };

const errors = [];
const core = new CopilotKitCore({ runtimeUrl, headers });
core.subscribe({
  onError: ({ error, code, context }) => {
    errors.push({
      code,
      message: error?.message,
      errorCode: error?.code ?? null,
      runtimeErrorCode: context?.runtimeErrorCode ?? null,
      status: error?.status ?? null,
    });
  },
});

function shown(agent) {
  return agent.messages.map((m) => ({
    id: m.id,
    role: m.role,
    content: typeof m.content === "string" ? m.content : null,
  }));
}

async function until(condition, what, timeoutMs = 20000) {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function connectedAgent() {
  await until(
    () => core.runtimeConnectionStatus !== "connecting" && core.runtimeConnectionStatus !== "disconnected",
    "the runtime's /info",
  );
  const agent = core.getAgent(agentId);
  if (!agent) {
    return null;
  }
  agent.threadId = threadId;
  await core.connectAgent({ agent });
  return agent;
}

async function say(agent, id, content) {
  agent.addMessage({ id, role: "user", content });
  await core.runAgent({ agent });
}

const result = { scenario };
if (scenario === "chat") {
  const agent = await connectedAgent();
  result.connected = shown(agent);
  await say(agent, "ck-u1", "Hello from CopilotKit");
  await say(agent, "ck-u2", "And once more");
  result.messages = shown(agent);
} else if (scenario === "reload") {
  const agent = await connectedAgent();
  result.messages = shown(agent);
  if (result.messages.length > 0) {
    // The chat goes on from what was restored.
    await say(agent, "ck-u3", "After the reload");
    result.continued = shown(agent);
  }
} else if (scenario === "stop") {
  const agent = await connectedAgent();
  agent.addMessage({ id: "ck-slow", role: "user", content: "go slowly" });
  const running = core.runAgent({ agent });
  const answer = () => agent.messages.find((m) => m.role === "assistant");
  await until(() => (answer()?.content ?? "").length >= 3, "the first tokens");
  core.stopAgent({ agent });
  await running;
  result.answer = { id: answer().id, content: answer().content };
  result.isRunning = agent.isRunning;
} else if (scenario === "refused") {
  // Signed in when the page loaded; the session then expires (or is revoked).
  const agent = await connectedAgent();
  core.setHeaders({ Authorization: `Bearer ${refusedToken}` });
  await say(agent, "ck-late", "Still there?");
  result.messages = shown(agent);
} else if (scenario === "anonymous") {
  await until(() => core.runtimeConnectionStatus === "error", "/info to fail");
  result.status = core.runtimeConnectionStatus;
  result.agents = Object.keys(core.agents);
} else {
  throw new Error(`unknown scenario ${scenario}`);
}
result.errors = errors;
console.log(JSON.stringify(result));
