// Tests for handler.ts: deno test supabase/functions/ops-executor/
// (deploy/test-deno.sh installs Deno from npm and runs them).
import { deepStrictEqual as equal, ok, strictEqual as is } from "node:assert";
import { corsHeaders, type Env, handler, type WakeResult } from "./handler.ts";

const runId = "8f14e45f-ceea-467f-a0e6-a1d2b3c4d5e6";
const env: Env = { OPSD_URL: "https://opsd.example.com/", OPSD_WEBHOOK_SECRET: "0123456789abcdef0123" };

interface Call {
  url: string;
  init: RequestInit;
}

/** A fetch that records its calls and answers with status. */
function recordingFetch(status = 202): { fetchFn: typeof fetch; calls: Call[] } {
  const calls: Call[] = [];
  const fetchFn = ((url: string | URL | Request, init?: RequestInit) => {
    calls.push({ url: String(url), init: init ?? {} });
    return Promise.resolve(new Response("{}", { status }));
  }) as typeof fetch;
  return { fetchFn, calls };
}

/** Runs handler, capturing the background wake promise. */
async function invoke(
  req: Request,
  e: Env = env,
  fetchFn: typeof fetch = recordingFetch().fetchFn,
  timeoutMs?: number,
): Promise<{ res: Response; body: unknown; wake?: Promise<unknown> }> {
  let wake: Promise<unknown> | undefined;
  const res = await handler(req, e, fetchFn, { waitUntil: (p) => (wake = p), timeoutMs });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch { /* not JSON: the preflight's "ok" */ }
  return { res, body, wake };
}

function post(body: string): Request {
  return new Request("http://localhost/functions/v1/ops-executor", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body,
  });
}

function assertCors(res: Response) {
  for (const [k, v] of Object.entries(corsHeaders)) is(res.headers.get(k), v, k);
}

Deno.test("OPTIONS preflight is answered like Supabase functions do", async () => {
  const { res, body, wake } = await invoke(new Request("http://localhost/", { method: "OPTIONS" }));
  is(res.status, 200);
  is(body, "ok");
  assertCors(res);
  is(res.headers.get("Access-Control-Allow-Headers"), "authorization, x-client-info, apikey, content-type");
  is(wake, undefined);
});

Deno.test("non-POST methods get 405", async () => {
  for (const method of ["GET", "PUT", "DELETE"]) {
    const { res, body } = await invoke(new Request("http://localhost/", { method }));
    is(res.status, 405, method);
    is(res.headers.get("Allow"), "POST, OPTIONS");
    assertCors(res);
    is((body as { ok: boolean }).ok, false);
  }
});

Deno.test("bad input gets 400 with {ok: false, error}", async () => {
  const cases = [
    "",
    "not json",
    "{",
    "null",
    "[]",
    `"${runId}"`,
    "{}",
    `{"run_id": 42}`,
    `{"run_id": "abc"}`,
    `{"run_id": "${runId}x"}`,
    `{"runId": "${runId}"}`,
  ];
  for (const raw of cases) {
    const { fetchFn, calls } = recordingFetch();
    const { res, body, wake } = await invoke(post(raw), env, fetchFn);
    is(res.status, 400, raw);
    assertCors(res);
    is(res.headers.get("Content-Type"), "application/json");
    const b = body as { ok: boolean; error: string };
    is(b.ok, false, raw);
    ok(b.error.length > 0, raw);
    is(wake, undefined, raw);
    is(calls.length, 0, raw);
  }
});

Deno.test("a valid run_id is answered at once and wakes opsd", async () => {
  const { fetchFn, calls } = recordingFetch();
  const { res, body, wake } = await invoke(post(JSON.stringify({ run_id: runId, worker_id: "ui" })), env, fetchFn);
  is(res.status, 200);
  assertCors(res);
  equal(body, { ok: true, run_id: runId });
  ok(wake, "the wake is handed to waitUntil");
  equal(await wake, { ok: true, status: 202 } satisfies WakeResult);

  is(calls.length, 1);
  is(calls[0].url, "https://opsd.example.com/v1/wake");
  is(calls[0].init.method, "POST");
  equal(calls[0].init.headers, { "Content-Type": "application/json", Authorization: "Bearer 0123456789abcdef0123" });
  equal(JSON.parse(calls[0].init.body as string), { run_id: runId });
  ok(calls[0].init.signal instanceof AbortSignal, "the wake has a timeout");
});

Deno.test("the response does not wait for a slow opsd", async () => {
  let aborted = false;
  const hanging = ((_url: string, init?: RequestInit) =>
    new Promise<Response>((_resolve, reject) => {
      init?.signal?.addEventListener("abort", () => {
        aborted = true;
        reject(init.signal!.reason);
      });
    })) as typeof fetch;
  const started = performance.now();
  const { res, wake } = await invoke(post(JSON.stringify({ run_id: runId })), env, hanging, 100);
  ok(performance.now() - started < 100, "answered before the wake timed out");
  is(res.status, 200);
  const result = await wake as WakeResult;
  ok(aborted);
  is(result.ok, false);
  is(result.error, "no answer within 100 ms");
});

Deno.test("a failing opsd or missing settings still answer ok", async () => {
  const failing = (() => Promise.reject(new TypeError("connection refused"))) as typeof fetch;
  let r = await invoke(post(JSON.stringify({ run_id: runId })), env, failing);
  equal(r.body, { ok: true, run_id: runId });
  is((await r.wake as WakeResult).ok, false);

  const { fetchFn, calls } = recordingFetch(401);
  r = await invoke(post(JSON.stringify({ run_id: runId })), env, fetchFn);
  equal(await r.wake, { ok: false, status: 401, error: "HTTP 401" });
  is(calls.length, 1);

  const unset = recordingFetch();
  r = await invoke(post(JSON.stringify({ run_id: runId })), {}, unset.fetchFn);
  equal(r.body, { ok: true, run_id: runId });
  is((await r.wake as WakeResult).ok, false);
  is(unset.calls.length, 0, "nothing to call");
});

Deno.test("over HTTP: the function wakes a real server with the secret", async () => {
  const received: { auth: string | null; body: unknown }[] = [];
  const opsd = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    received.push({ auth: req.headers.get("Authorization"), body: await req.json() });
    return new Response(null, { status: 202 });
  });
  const pending: Promise<unknown>[] = [];
  const fn = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) =>
      handler(
        req,
        { OPSD_URL: `http://127.0.0.1:${opsd.addr.port}`, OPSD_WEBHOOK_SECRET: "s3cret-s3cret-s3cret" },
        fetch,
        {
          waitUntil: (p) => pending.push(p),
        },
      ),
  );
  try {
    const res = await fetch(`http://127.0.0.1:${fn.addr.port}/`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ run_id: runId }),
    });
    equal(await res.json(), { ok: true, run_id: runId });
    await Promise.all(pending);
    equal(received, [{ auth: "Bearer s3cret-s3cret-s3cret", body: { run_id: runId } }]);
  } finally {
    await fn.shutdown();
    await opsd.shutdown();
  }
});
