// Entry point of the ops-executor edge function; the logic is in handler.ts.
import { handler } from "./handler.ts";

// EdgeRuntime exists on Supabase's edge runtime only (not in plain Deno).
const edgeRuntime = (globalThis as { EdgeRuntime?: { waitUntil(p: Promise<unknown>): void } }).EdgeRuntime;

Deno.serve((req) =>
  handler(
    req,
    {
      OPSD_URL: Deno.env.get("OPSD_URL"),
      OPSD_WEBHOOK_SECRET: Deno.env.get("OPSD_WEBHOOK_SECRET"),
    },
    fetch,
    { waitUntil: edgeRuntime ? (p) => edgeRuntime.waitUntil(p) : undefined },
  )
);
