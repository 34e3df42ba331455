// Package postgresttest is a small PostgREST-compatible HTTP server for tests.
// PostgREST itself cannot be installed where opsd's tests run, so this server
// serves the subset of PostgREST that opsd and the Ops Control Room frontend
// use, over a real PostgreSQL, mounted under /rest/v1 like Supabase:
//
//   - tables: GET with select, filters (eq, neq, gt, gte, lt, lte, like, ilike,
//     in, is, and not.<op>), order (asc/desc, nullsfirst/nullslast), limit and
//     offset; POST of an object or an array with Prefer return=minimal or
//     representation and resolution=ignore-duplicates or merge-duplicates with
//     on_conflict; PATCH and DELETE with filters; the singular media type
//     application/vnd.pgrst.object+json (406 PGRST116 unless exactly one row);
//   - functions: POST /rpc/<fn> with named JSON arguments, resolved in pg_proc
//     by name and argument names, called as fn(arg := x.arg) over
//     json_to_record($1) so JSON arrays become PostgreSQL arrays; scalar,
//     set, composite and void results are shaped as PostgREST shapes them;
//   - auth: the apikey header and Authorization: Bearer JWT (HS256), the role
//     claim impersonated with SET LOCAL ROLE and the claims published in
//     request.jwt.claims, so row level security is really enforced;
//   - errors: the PostgREST JSON error body {code, message, details, hint}
//     with the HTTP status of PostgREST's SQLSTATE table.
//
// Each request runs in one transaction, READ ONLY for GET and for STABLE or
// IMMUTABLE functions, as PostgREST runs it. Identifiers are checked against
// the catalog (a schema cache reloaded on a miss); values are always bound
// parameters.
//
// On top of that, faults can be injected on demand (Inject, Outage): error
// statuses, 429 with Retry-After, latency, connections dropped before the
// request runs, and responses lost after the transaction committed. Stats
// counts requests and the faults served, for chaos reports.
//
// What it does not do: resource embedding, or/and trees, any/all modifiers,
// full-text search, counts, Range headers, CSV, GET on functions, filters on
// function results, PUT, Prefer missing=default, and schemas other than
// public.
//
// Behaviour follows PostgREST's documentation, pages followed:
//
//   - https://docs.postgrest.org/en/latest/references/api/tables_views.html
//     (operators, ordering, insert, bulk insert, upsert, on_conflict, update, delete)
//   - https://docs.postgrest.org/en/latest/references/api/url_grammar.html
//   - https://docs.postgrest.org/en/latest/references/api/preferences.html
//     (Prefer: return, resolution, Preference-Applied)
//   - https://docs.postgrest.org/en/latest/references/api/functions.html
//     (named arguments, array parameters, scalar and table-valued results)
//   - https://docs.postgrest.org/en/latest/references/api/resource_representation.html
//     (singular or plural, application/vnd.pgrst.object+json)
//   - https://docs.postgrest.org/en/latest/references/transactions.html
//     (access mode per method and volatility, request.jwt.claims settings)
//   - https://docs.postgrest.org/en/latest/references/auth.html
//     (role claim, user impersonation, anonymous role)
//   - https://docs.postgrest.org/en/latest/references/errors.html
//     (HTTP status per SQLSTATE, PGRST error codes, RAISE and PTxyz statuses)
//   - https://supabase.com/docs/guides/api/api-keys (apikey header and the
//     anon and service_role keys as JWTs with a role claim)
package postgresttest
