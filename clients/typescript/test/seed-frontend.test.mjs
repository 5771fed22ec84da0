// The seed-era front end (seed-frontend.mjs) against a server with no API key, as that
// front end ran: only its import line and base URL changed.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import * as frontend from "./seed-frontend.mjs";
import { startServers } from "./servers.mjs";

let servers;
before(async () => {
  servers = await startServers();
  frontend.configure(servers.localUrl);
});
after(async () => {
  await servers?.stop();
});

function panel() {
  const state = { entries: null, loading: false, resets: 0 };
  return {
    state,
    reset: () => {
      state.entries = null;
      state.resets += 1;
    },
    setLoading: (v) => {
      state.loading = v;
    },
    loadTrace: (entries) => {
      state.entries = entries;
    },
  };
}

test("the seed's front end runs its six calls unchanged", async () => {
  const user = servers.localUser;
  const chat = `chat_${Date.now()}`;
  const entries = [
    { timestamp: "2025-10-30T12:00:00Z", node: "inputer_agent", event: "routing_decision" },
    { timestamp: "2025-10-30T12:00:01Z", node: "agent_tool_node", event: "tool_call", tool: "send_gmail" },
  ];

  const empty = panel();
  await frontend.loadAutomationTrace(chat, empty);
  assert.equal(empty.state.entries, null);
  assert.equal(empty.state.resets, 1);
  assert.equal(empty.state.loading, false);

  const id = await frontend.saveCurrentTrace(user, "provider-1", chat, entries, "Test Trace");
  const shown = panel();
  await frontend.loadAutomationTrace(chat, shown);
  assert.deepEqual(shown.state.entries, entries);

  const listed = await frontend.listMyTraces(user, "provider-1");
  assert.deepEqual(listed, [{ id, name: "Test Trace", entries: 2 }]);
  assert.deepEqual(await frontend.listMyTraces(user, "another-provider"), []);
  assert.equal(await frontend.renameTrace(id, "Renamed"), true);
  const opened = await frontend.openTrace(id);
  assert.equal(opened.name, "Renamed");
  assert.equal(opened.steps, 2);
  assert.ok(!Number.isNaN(Date.parse(opened.created)));
  assert.equal(await frontend.removeTrace(id), true);
  const gone = panel();
  await frontend.loadAutomationTrace(chat, gone);
  assert.equal(gone.state.entries, null);
});
