// The client against live servers on a real database: every method, typed errors, two
// users' keys that cannot see each other.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  AutomationTraceApiService,
  AutomationTraceError,
  ForbiddenError,
  NetworkError,
  PayloadTooLargeError,
  TraceNotFoundError,
  UnauthorizedError,
  ValidationError,
  createAutomationTraceClient,
} from "../dist/automation-trace.js";
import { startServers } from "./servers.mjs";

let servers;
let ana;
let ben;
let admin;
const unique = (prefix) => `${prefix}-${Math.random().toString(16).slice(2, 10)}`;

before(async () => {
  servers = await startServers();
  ana = createAutomationTraceClient({ baseUrl: servers.keysUrl, token: servers.keys.ana });
  ben = createAutomationTraceClient({ baseUrl: `${servers.keysUrl}/`, token: servers.keys.ben });
  admin = createAutomationTraceClient({ baseUrl: servers.keysUrl, token: servers.keys.admin });
});
after(async () => {
  await servers?.stop();
});

describe("every method", () => {
  test("save, read, list, update, append, upsert, count, delete", async () => {
    const thread = unique("thread");
    const saved = await ana.saveTrace({ thread_id: thread, trace_data: [{ node: "plan" }], name: "first" });
    assert.equal(saved.success, true);
    const id = saved.trace_id;

    const row = await ana.getTraceById(id);
    assert.deepEqual(Object.keys(row).slice(0, 8), [
      "id", "user_id", "provider_id", "thread_id", "name", "trace_data", "created_at", "updated_at",
    ]);
    assert.equal(row.user_id, servers.users.ana);
    assert.deepEqual(row.trace_data, [{ node: "plan" }]);
    assert.equal((await ana.getTraceByThread(thread)).id, id);

    const appended = await ana.appendEntries(id, { entries: [{ node: "tools" }], status: "running" });
    assert.deepEqual([appended.first_seq, appended.entry_count, appended.written], [1, 2, 1]);

    const updated = await ana.updateTrace(id, { name: "renamed", status: "failed", metadata: { k: 1 } });
    assert.equal(updated.trace.name, "renamed");
    assert.equal(updated.trace.status, "failed");

    const other = unique("thread");
    const up = await ana.upsertTraceByThread(other, { trace_data: { automation_trace: [1, "two"] } });
    assert.deepEqual((await ana.getTraceById(up.trace_id)).trace_data, [1, "two"]);
    await ana.upsertTraceByThread(other, { trace_data: [1, "two", { three: 3 }] });
    assert.deepEqual((await ana.getTraceByThread(other)).trace_data, [1, "two", { three: 3 }]);

    const page = await ana.getUserTraces({ limit: 1 });
    assert.equal(page.count, 1);
    assert.equal(page.traces[0].id, up.trace_id);
    const next = await ana.getUserTraces({ limit: 1, cursor: page.next_cursor });
    assert.deepEqual(next.traces.map((t) => t.id), [id]);
    assert.deepEqual((await ana.getUserTraces({ limit: 1, offset: 1 })).traces.map((t) => t.id), [id]);
    const filtered = await ana.getUserTraces({ status: ["failed"], node: "tools", contains: '{"node": "plan"}' });
    assert.deepEqual(filtered.traces.map((t) => t.id), [id]);
    assert.equal((await ana.countTraces({ text: "two" })).count, 1);
    assert.equal((await ana.countTraces()).count, 2);

    assert.equal((await ana.deleteTrace(id)).success, true);
    await assert.rejects(ana.getTraceById(id), TraceNotFoundError);
    assert.equal((await ana.deleteMatching({ thread_id: other })).deleted, 1);
    assert.equal((await ana.countTraces()).count, 0);
    assert.deepEqual(await ana.health(), { ok: true });
  });

  test("the static service, configured once", async () => {
    AutomationTraceApiService.configure({ baseUrl: servers.keysUrl, token: servers.keys.ben });
    const thread = unique("static");
    const { trace_id } = await AutomationTraceApiService.saveTrace({ thread_id: thread, trace_data: [] });
    assert.equal((await AutomationTraceApiService.getTraceByThread(thread)).id, trace_id);
    assert.equal((await AutomationTraceApiService.deleteTrace(trace_id)).success, true);
  });
});

describe("typed errors", () => {
  test("401 without a key or with an unknown one", async () => {
    const anonymous = createAutomationTraceClient({ baseUrl: servers.keysUrl });
    await assert.rejects(anonymous.getUserTraces(), (e) => e instanceof UnauthorizedError && e.status === 401);
    const wrong = createAutomationTraceClient({ baseUrl: servers.keysUrl, token: "tdb_wrong" });
    await assert.rejects(wrong.countTraces(), UnauthorizedError);
  });

  test("404, 403, 422 and 413", async () => {
    await assert.rejects(ana.getTraceById("00000000-0000-0000-0000-000000000000"), TraceNotFoundError);
    await assert.rejects(ana.getTraceByThread(unique("none")), TraceNotFoundError);
    await assert.rejects(ana.getUserTraces({ user_id: servers.users.ben }), ForbiddenError);
    await assert.rejects(ana.saveTrace({ thread_id: "t", user_id: servers.users.ben }), ForbiddenError);
    await assert.rejects(ana.getUserTraces({ since: "yesterday" }), (e) => {
      assert.ok(e instanceof ValidationError && Array.isArray(e.detail));
      assert.match(e.message, /since/);
      return true;
    });
    await assert.rejects(ana.deleteMatching({}), ValidationError);
    await assert.rejects(ana.updateTrace("00000000-0000-0000-0000-000000000000", {}), ValidationError);
    const big = "x".repeat(servers.maxBodyBytes);
    await assert.rejects(ana.saveTrace({ thread_id: "t", trace_data: [big] }), PayloadTooLargeError);
  });

  test("a server that is not there", async () => {
    const nowhere = createAutomationTraceClient({ baseUrl: "http://127.0.0.1:9" });
    await assert.rejects(nowhere.health(), (e) => e instanceof NetworkError && e instanceof AutomationTraceError);
  });
});

test("two users' keys cannot see each other's traces; an admin key sees both", async () => {
  const thread = unique("shared-thread-id");
  const mine = (await ana.upsertTraceByThread(thread, { trace_data: [{ secret: "ana" }] })).trace_id;
  await assert.rejects(ben.getTraceById(mine), TraceNotFoundError);
  await assert.rejects(ben.getTraceByThread(thread), TraceNotFoundError);
  await assert.rejects(ben.updateTrace(mine, { name: "stolen" }), TraceNotFoundError);
  await assert.rejects(ben.appendEntries(mine, { entries: [1] }), TraceNotFoundError);
  await assert.rejects(ben.deleteTrace(mine), TraceNotFoundError);
  const his = (await ben.upsertTraceByThread(thread, { trace_data: [{ secret: "ben" }] })).trace_id;
  assert.notEqual(his, mine);
  assert.equal((await ben.countTraces({ text: "ana" })).count, 0);
  await ben.deleteMatching({ all: true });
  assert.deepEqual((await ana.getTraceById(mine)).trace_data, [{ secret: "ana" }]);
  const seen = await admin.getUserTraces({ user_id: servers.users.ana });
  assert.ok(seen.traces.some((t) => t.id === mine));
  await admin.deleteTrace(mine);
});

describe("appends that lose their answer", () => {
  test("are sent again with their batch id and stored once", async () => {
    const id = (await ana.saveTrace({ thread_id: unique("thread"), trace_data: [] })).trace_id;
    let calls = 0;
    // The request reaches the server and is stored; its answer is lost on the way back.
    const losing = async (input, init) => {
      const response = await fetch(input, init);
      calls += 1;
      if (calls === 1) {
        await response.text();
        throw new TypeError("connection reset");
      }
      return response;
    };
    const client = createAutomationTraceClient({ baseUrl: servers.keysUrl, token: servers.keys.ana, fetch: losing });
    const appended = await client.appendEntries(id, { entries: [{ node: "a" }, { node: "b" }] });
    assert.equal(calls, 2);
    assert.equal(appended.duplicate, true);
    assert.equal(appended.entry_count, 2);
    assert.deepEqual((await ana.getTraceById(id)).trace_data, [{ node: "a" }, { node: "b" }]);

    const batch_id = crypto.randomUUID();
    const first = await ana.appendEntries(id, { entries: [{ node: "c" }], batch_id });
    const again = await ana.appendEntries(id, { entries: [{ node: "c" }], batch_id });
    assert.deepEqual([first.written, first.duplicate, again.written, again.duplicate], [1, false, 0, true]);
    assert.equal((await ana.getTraceById(id)).trace_data.length, 3);
  });

  test("give up after two more tries when nothing answers", async () => {
    let calls = 0;
    const down = async () => {
      calls += 1;
      throw new TypeError("connection refused");
    };
    const client = createAutomationTraceClient({ baseUrl: servers.keysUrl, token: servers.keys.ana, fetch: down });
    await assert.rejects(client.appendEntries(unique("id"), { entries: [{}] }), NetworkError);
    assert.equal(calls, 3);
  });
});
