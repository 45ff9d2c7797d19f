// Package bench is the performance benchmark of vault-plugin-salesforce against a real Vault.
//
// TestBench starts the Salesforce emulator (a process) and a single-node Vault on file storage
// with the built plugin registered and mounted, then measures, each with its baseline in the
// same run:
//
//  1. cached read: creds/<role> in shared mode at 1, 8 and 64 clients against a KV-v2 read of
//     a secret holding the same fields and against auth/token/create (a lease of Vault's own);
//  2. cold mint: creds/<role> in per_lease mode against signing the same assertion with the
//     same key and POSTing it to the emulator from Go, without Vault;
//  3. stampede: 64 clients reading one cold role at once (the emulator must see 1 token request);
//  4. rotation under load: cached and cold reads during metadata_api rotations (0 failed reads);
//     the same during a client-credentials consumer key/secret rotation, waited out to the
//     deletion of the previous pair; and the tenant-secret rotate's latency against a cold mint,
//     with reads of its connection running;
//  5. scale: 1,000 connections and 10,000 roles: storage bytes, role list time, plugin RSS, and
//     the periodic tick (in process: Vault does not expose it);
//  6. key generation: reads of a connection while its rotation generates an RSA-4096 key.
//
// Without BENCH_FULL=1 it is a smoke (tiny counts, one round, a few seconds plus Vault's start,
// plus the one-minute overlap of the consumer-secret rotation, the plugin's minimum)
// that asserts correctness only: one token request per stampede, no failed read, rotations that
// complete. It never asserts a timing. With BENCH_FULL=1 (`make bench`) it runs the full plan
// and writes docs/BENCHMARKS.md (BENCH_DOC overrides the path), folding in the in-process
// `go test -bench` results of package backend named by BENCH_INPROC (comma-separated files).
//
// Like the e2e tests it needs VAULT_BIN (and the built plugin and emulator) and skips without it.
package bench
