// Drives the service with AG-UI's own client (`HttpAgent` from @ag-ui/client, what
// CopilotKit's runtime uses), which verifies the event sequence as it reads it.
// Usage: node run_http_agent.mjs <runs-url> <token> <thread-id>
// Prints one JSON object: the events of each run and the messages the client ends up with.
import { HttpAgent } from "@ag-ui/client";

const [url, token, threadId] = process.argv.slice(2);

async function runOnce(initialMessages) {
  const agent = new HttpAgent({
    url,
    headers: { Authorization: `Bearer ${token}` },
    threadId,
    initialMessages,
  });
  const events = [];
  let snapshot = null;
  await agent.runAgent({}, {
    onEvent: ({ event }) => {
      events.push(event.type);
      if (event.type === "MESSAGES_SNAPSHOT") snapshot = event.messages.map((m) => m.id);
    },
  });
  return {
    events,
    snapshot,
    messages: agent.messages.map((m) => ({ id: m.id, role: m.role, content: m.content })),
  };
}

const first = await runOnce([{ id: "node-m1", role: "user", content: "Hello from Node" }]);
// A reload: the client only knows its newest message; the service sends the rest first.
const second = await runOnce([{ id: "node-m3", role: "user", content: "And again" }]);
console.log(JSON.stringify({ first, second }));
