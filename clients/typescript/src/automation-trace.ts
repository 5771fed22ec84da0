/**
 * Typed client of the tracedb HTTP API (`/automation/traces`).
 *
 * The seed's front end called a static service; it keeps doing so:
 *
 *   import { AutomationTraceApiService } from "tracedb-client";
 *   AutomationTraceApiService.configure({ baseUrl: "http://localhost:8765", token });
 *   const trace = await AutomationTraceApiService.getTraceByThread(chatId);
 *
 * For several servers, make clients: `createAutomationTraceClient({ baseUrl, token })`.
 * Methods take the seed's snake_case fields in one object and return the API's bodies;
 * a failed request throws an `AutomationTraceError` subclass named after its status.
 * Types come from the API's OpenAPI document (`src/schema.ts`, generated). No runtime
 * dependencies: it uses the platform's `fetch`.
 */

import type { components, operations } from "./schema.js";

type Schemas = components["schemas"];

/** A stored trace: the seed's row (`id` … `updated_at`), then tracedb's fields. */
export type TraceRow = Schemas["TraceRow"];
/** A stored trace without its entries, as listings return it. */
export type TraceSummaryRow = Schemas["TraceSummaryRow"];
export type SaveTraceBody = Schemas["SaveTraceBody"];
export type UpdateTraceBody = Schemas["UpdateTraceBody"];
export type UpsertTraceBody = Schemas["UpsertTraceBody"];
export type AppendEntriesBody = Schemas["AppendEntriesBody"];
export type SavedTrace = Schemas["SavedTrace"];
export type TraceList = Schemas["TraceList"];
export type UpdatedTrace = Schemas["UpdatedTrace"];
export type DeletedTrace = Schemas["DeletedTrace"];
export type UpsertedTrace = Schemas["UpsertedTrace"];
export type AppendedEntries = Schemas["AppendedEntries"];
export type TraceCount = Schemas["TraceCount"];
export type DeletedTraces = Schemas["DeletedTraces"];
export type Health = Schemas["Health"];
export type ErrorBody = Schemas["ErrorBody"];

/** Filters of listings, counts and deletes: user_id, provider_id, thread_id, name, status, since, until, node, text, contains, trace_id. */
export type TraceFilters = NonNullable<operations["count_traces"]["parameters"]["query"]>;
/** A listing: the filters plus limit, offset and cursor. */
export type ListParams = NonNullable<operations["list_traces"]["parameters"]["query"]>;
/** A delete by filter: the filters plus `all` (needed when there is no filter). */
export type DeleteMatchingParams = NonNullable<operations["delete_traces"]["parameters"]["query"]>;

export interface ClientOptions {
  /** Where the API is, e.g. `http://localhost:8765`; empty for the page's own origin. */
  baseUrl?: string;
  /** An API key from `python -m tracedb api-key create`, sent as `Authorization: Bearer`. */
  token?: string | null;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
  /** Headers added to every request. */
  headers?: Record<string, string>;
}

/** A request the API refused, or one that never reached it (status 0). */
export class AutomationTraceError extends Error {
  readonly status: number;
  /** The API's `detail`: a message, or for malformed input a list of what is wrong and where. */
  readonly detail: ErrorBody["detail"] | string;
  readonly body: unknown;

  constructor(status: number, detail: ErrorBody["detail"] | string, body: unknown = undefined) {
    super(typeof detail === "string" ? detail : detail.map((d) => `${d.loc.join(".")}: ${d.msg}`).join("; "));
    this.name = new.target.name;
    this.status = status;
    this.detail = detail;
    this.body = body;
  }
}
/** 401: no API key, or an unknown or revoked one. */
export class UnauthorizedError extends AutomationTraceError {}
/** 403: a user id other than the key's. */
export class ForbiddenError extends AutomationTraceError {}
/** 404: no such trace (or another user's). */
export class TraceNotFoundError extends AutomationTraceError {}
/** 413: the body is over the server's limit. */
export class PayloadTooLargeError extends AutomationTraceError {}
/** 415: the body was not sent as JSON. */
export class UnsupportedMediaTypeError extends AutomationTraceError {}
/** 422: malformed input. */
export class ValidationError extends AutomationTraceError {}
/** 503: the database is unreachable. */
export class ServiceUnavailableError extends AutomationTraceError {}
/** The server could not be reached, or did not answer with JSON. */
export class NetworkError extends AutomationTraceError {}

const ERRORS: Record<number, typeof AutomationTraceError> = {
  401: UnauthorizedError,
  403: ForbiddenError,
  404: TraceNotFoundError,
  413: PayloadTooLargeError,
  415: UnsupportedMediaTypeError,
  422: ValidationError,
  503: ServiceUnavailableError,
};

export interface AutomationTraceClient {
  /** `POST /automation/traces`: store a new trace of a thread. */
  saveTrace(body: SaveTraceBody): Promise<SavedTrace>;
  /** `GET /automation/traces/{trace_id}`: a trace with its entries. */
  getTraceById(traceId: string): Promise<TraceRow>;
  /** `GET /automation/traces/thread/{thread_id}`: the thread's most recent trace. */
  getTraceByThread(threadId: string): Promise<TraceRow>;
  /** `GET /automation/traces`: matching traces without entries, newest first. */
  getUserTraces(params?: ListParams): Promise<TraceList>;
  /** `PATCH /automation/traces/{trace_id}`: name, trace_data, status, metadata; all or nothing. */
  updateTrace(traceId: string, body: UpdateTraceBody): Promise<UpdatedTrace>;
  /** `DELETE /automation/traces/{trace_id}`. */
  deleteTrace(traceId: string): Promise<DeletedTrace>;
  /** `PUT /automation/traces/thread/{thread_id}`: the stored trace becomes `trace_data`. */
  upsertTraceByThread(threadId: string, body: UpsertTraceBody): Promise<UpsertedTrace>;
  /**
   * `POST /automation/traces/{trace_id}/entries`: add entries at the end. The batch is sent
   * with a `batch_id` (the caller's, or a new one), and sent again with it when no answer
   * came back (up to twice): the server stores it once, however many times it arrived.
   */
  appendEntries(traceId: string, body: AppendEntriesBody): Promise<AppendedEntries>;
  /** `GET /automation/traces/count`. */
  countTraces(filters?: TraceFilters): Promise<TraceCount>;
  /** `DELETE /automation/traces?…`: every match (with no filter, only with `all: true`). */
  deleteMatching(params: DeleteMatchingParams): Promise<DeletedTraces>;
  /** `GET /health`. */
  health(): Promise<Health>;
}

type Query = Record<string, string | number | boolean | readonly string[] | null | undefined>;

function queryString(params: Query | undefined): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params ?? {})) {
    if (value === undefined || value === null) continue;
    if (Array.isArray(value)) {
      for (const item of value) search.append(key, String(item));
    } else {
      search.append(key, String(value));
    }
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

const segment = (value: string): string => encodeURIComponent(value);
/** How many times an append that got no answer is sent again. */
const APPEND_RETRIES = 2;

/** A client of one server. */
export function createAutomationTraceClient(options: ClientOptions = {}): AutomationTraceClient {
  const base = (options.baseUrl ?? "").replace(/\/+$/, "");
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);

  async function request<T>(method: string, path: string, query?: Query, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: "application/json", ...options.headers };
    if (options.token) headers.Authorization = `Bearer ${options.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response: Response;
    try {
      response = await doFetch(`${base}${path}${queryString(query)}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (cause) {
      throw new NetworkError(0, `cannot reach ${base || "the API"}: ${String(cause)}`, cause);
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      throw new NetworkError(response.status, `the API answered ${response.status} without JSON`, text);
    }
    if (!response.ok) {
      const detail = (parsed as Partial<ErrorBody> | undefined)?.detail ?? `HTTP ${response.status}`;
      const Kind = ERRORS[response.status] ?? AutomationTraceError;
      throw new Kind(response.status, detail, parsed);
    }
    return parsed as T;
  }

  return {
    saveTrace: (body) => request("POST", "/automation/traces", undefined, body),
    getTraceById: (traceId) => request("GET", `/automation/traces/${segment(traceId)}`),
    getTraceByThread: (threadId) => request("GET", `/automation/traces/thread/${segment(threadId)}`),
    getUserTraces: (params) => request("GET", "/automation/traces", params),
    updateTrace: (traceId, body) => request("PATCH", `/automation/traces/${segment(traceId)}`, undefined, body),
    deleteTrace: (traceId) => request("DELETE", `/automation/traces/${segment(traceId)}`),
    upsertTraceByThread: (threadId, body) =>
      request("PUT", `/automation/traces/thread/${segment(threadId)}`, undefined, body),
    appendEntries: async (traceId, body) => {
      const path = `/automation/traces/${segment(traceId)}/entries`;
      const batchId = body.batch_id ?? globalThis.crypto?.randomUUID?.();
      if (!batchId) return request("POST", path, undefined, body);
      const sent = { ...body, batch_id: batchId };
      for (let attempt = 0; ; attempt++) {
        try {
          return await request<AppendedEntries>("POST", path, undefined, sent);
        } catch (error) {
          // status 0: no answer (never arrived, or its reply was lost); the batch id makes
          // sending it again safe
          if (!(error instanceof NetworkError) || error.status !== 0 || attempt >= APPEND_RETRIES) throw error;
          await new Promise((resolve) => setTimeout(resolve, 100 * 2 ** attempt));
        }
      }
    },
    countTraces: (filters) => request("GET", "/automation/traces/count", filters),
    deleteMatching: (params) => request("DELETE", "/automation/traces", params),
    health: () => request("GET", "/health"),
  };
}

let shared: AutomationTraceClient = createAutomationTraceClient();

/**
 * The seed's service: static methods on one shared client. Call `configure` once (until
 * then requests go to the page's own origin, without a key).
 */
export class AutomationTraceApiService {
  /** Where the API is and which key to send, for every later call. */
  static configure(options: ClientOptions): void {
    shared = createAutomationTraceClient(options);
  }
  static saveTrace(body: SaveTraceBody): Promise<SavedTrace> {
    return shared.saveTrace(body);
  }
  static getTraceById(traceId: string): Promise<TraceRow> {
    return shared.getTraceById(traceId);
  }
  static getTraceByThread(threadId: string): Promise<TraceRow> {
    return shared.getTraceByThread(threadId);
  }
  static getUserTraces(params?: ListParams): Promise<TraceList> {
    return shared.getUserTraces(params);
  }
  static updateTrace(traceId: string, body: UpdateTraceBody): Promise<UpdatedTrace> {
    return shared.updateTrace(traceId, body);
  }
  static deleteTrace(traceId: string): Promise<DeletedTrace> {
    return shared.deleteTrace(traceId);
  }
  static upsertTraceByThread(threadId: string, body: UpsertTraceBody): Promise<UpsertedTrace> {
    return shared.upsertTraceByThread(threadId, body);
  }
  static appendEntries(traceId: string, body: AppendEntriesBody): Promise<AppendedEntries> {
    return shared.appendEntries(traceId, body);
  }
  static countTraces(filters?: TraceFilters): Promise<TraceCount> {
    return shared.countTraces(filters);
  }
  static deleteMatching(params: DeleteMatchingParams): Promise<DeletedTraces> {
    return shared.deleteMatching(params);
  }
  static health(): Promise<Health> {
    return shared.health();
  }
}

export default AutomationTraceApiService;
