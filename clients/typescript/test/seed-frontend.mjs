// A front end written for the seed's service, as it was, with two changes: the import line
// and the base URL. It loads a chat's trace into a panel, saves one, lists, renames and
// deletes, through the six calls it used.
import { AutomationTraceApiService } from "../dist/automation-trace.js"; // was: '../../../api/automation-trace'

export function configure(baseUrl) {
  AutomationTraceApiService.configure({ baseUrl }); // was: the API_BASE_URL constant
}

// The trace panel: load a chat's trace, or clear the panel when there is none.
export async function loadAutomationTrace(chatId, store) {
  if (!chatId) {
    store.reset();
    return;
  }
  try {
    store.setLoading(true);
    const result = await AutomationTraceApiService.getTraceByThread(chatId);
    if (result && result.trace_data && Array.isArray(result.trace_data)) {
      store.loadTrace(result.trace_data);
    } else {
      store.reset();
    }
  } catch (error) {
    store.reset();
  } finally {
    store.setLoading(false);
  }
}

export async function saveCurrentTrace(userId, providerId, chatId, entries, name) {
  const response = await AutomationTraceApiService.saveTrace({
    user_id: userId,
    provider_id: providerId,
    thread_id: chatId,
    trace_data: entries,
    name,
  });
  return response.trace_id;
}

export async function listMyTraces(userId, providerId) {
  const response = await AutomationTraceApiService.getUserTraces({ user_id: userId, provider_id: providerId, limit: 20, offset: 0 });
  return response.traces.map((t) => ({ id: t.id, name: t.name, entries: t.entry_count }));
}

export async function renameTrace(traceId, name) {
  const response = await AutomationTraceApiService.updateTrace(traceId, { trace_id: traceId, name });
  return response.success;
}

export async function openTrace(traceId) {
  const trace = await AutomationTraceApiService.getTraceById(traceId);
  return { name: trace.name, steps: trace.trace_data.length, created: trace.created_at };
}

export async function removeTrace(traceId) {
  const response = await AutomationTraceApiService.deleteTrace(traceId);
  return response.success;
}
