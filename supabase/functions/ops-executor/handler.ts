// ops-executor: the edge function the Ops Control Room frontend invokes after
// queueing a run (supabase.functions.invoke("ops-executor", {body: {run_id}})).
//
// It no longer executes anything. opsd, a daemon, claims queued runs from the
// database and executes them; this function only wakes opsd so that a run starts
// at once instead of at opsd's next poll, and answers the frontend straight away.
// A wake that fails or times out loses nothing: the run stays queued, and opsd
// (woken by the database webhook, or by its own poll) picks it up.
//
// Deploy:
//   supabase secrets set OPSD_URL=https://opsd.example.com OPSD_WEBHOOK_SECRET=...
//   supabase functions deploy ops-executor
// Test: deploy/test-deno.sh
//
// Contract:
//   OPTIONS           -> 200 "ok" with CORS headers (browser preflight)
//   POST {run_id}     -> 200 {ok: true, run_id}; then POST ${OPSD_URL}/v1/wake,
//                        Authorization: Bearer ${OPSD_WEBHOOK_SECRET}, body {run_id},
//                        2 s timeout, outside the response (EdgeRuntime.waitUntil)
//   bad JSON, run_id missing or not a UUID -> 400 {ok: false, error}
//   any other method  -> 405 {ok: false, error}

/** Settings, read from the function's secrets (supabase secrets set ...). */
export interface Env {
  /** opsd's base URL, e.g. https://opsd.example.com (no trailing /v1/wake). */
  OPSD_URL?: string;
  /** Shared secret opsd expects as "Authorization: Bearer <secret>". */
  OPSD_WEBHOOK_SECRET?: string;
}

export interface Options {
  /**
   * Keeps the instance alive until the wake settles without delaying the
   * response: EdgeRuntime.waitUntil on Supabase.
   */
  waitUntil?: (p: Promise<unknown>) => void;
  /** How long the wake request may take; default 2000 ms. */
  timeoutMs?: number;
}

/** What became of a wake request; never rejects. */
export interface WakeResult {
  ok: boolean;
  status?: number;
  error?: string;
}

/** The CORS headers Supabase's own functions send, for browser callers. */
export const corsHeaders: Record<string, string> = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers": "authorization, x-client-info, apikey, content-type",
  "Access-Control-Allow-Methods": "POST, OPTIONS",
};

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const defaultTimeoutMs = 2000;

function json(status: number, body: unknown, extra: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...corsHeaders, "Content-Type": "application/json", ...extra },
  });
}

/**
 * Handles one request: CORS preflight, then POST {run_id} -> {ok: true, run_id}
 * at once, with the wake to opsd sent in the background.
 */
export async function handler(
  req: Request,
  env: Env,
  fetchFn: typeof fetch = fetch,
  opts: Options = {},
): Promise<Response> {
  if (req.method === "OPTIONS") {
    return new Response("ok", { headers: corsHeaders });
  }
  if (req.method !== "POST") {
    return json(405, { ok: false, error: "method not allowed: use POST" }, { Allow: "POST, OPTIONS" });
  }

  let body: unknown;
  try {
    body = await req.json();
  } catch {
    return json(400, { ok: false, error: 'body must be JSON: {"run_id": "<uuid>"}' });
  }
  const runId = typeof body === "object" && body !== null && !Array.isArray(body)
    ? (body as Record<string, unknown>).run_id
    : undefined;
  if (typeof runId !== "string" || !uuidPattern.test(runId)) {
    return json(400, { ok: false, error: "run_id must be a UUID" });
  }

  const pending = wake(runId, env, fetchFn, opts.timeoutMs ?? defaultTimeoutMs).then((r) => {
    if (!r.ok) console.error(`ops-executor: wake for run ${runId} failed: ${r.error}`);
    return r;
  });
  opts.waitUntil?.(pending);
  return json(200, { ok: true, run_id: runId });
}

/** POSTs {run_id} to opsd's /v1/wake, giving up after timeoutMs. */
export async function wake(
  runId: string,
  env: Env,
  fetchFn: typeof fetch,
  timeoutMs: number,
): Promise<WakeResult> {
  const base = env.OPSD_URL?.trim().replace(/\/+$/, "");
  const secret = env.OPSD_WEBHOOK_SECRET?.trim();
  if (!base || !secret) {
    return { ok: false, error: "OPSD_URL and OPSD_WEBHOOK_SECRET must be set" };
  }
  try {
    const res = await fetchFn(`${base}/v1/wake`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${secret}` },
      body: JSON.stringify({ run_id: runId }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.body?.cancel();
    return res.ok ? { ok: true, status: res.status } : { ok: false, status: res.status, error: `HTTP ${res.status}` };
  } catch (err) {
    const name = err instanceof Error ? err.name : "";
    return { ok: false, error: name === "TimeoutError" ? `no answer within ${timeoutMs} ms` : String(err) };
  }
}
