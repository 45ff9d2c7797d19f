package bench

import (
	"fmt"
	"strings"
)

// secretRotations renders the rotations of the consumer credentials and of a tenant secret,
// beside the key's (section 4).
func (r *Report) secretRotations(b *strings.Builder) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p50Ratio := func(a, base Rounds) float64 {
		return PerRound(a, base, func(x, y Summary) float64 { return ratio(p50(x), p50(y)) })
	}
	readers := func(rows ...readerRow) {
		w("| readers | p50 no rotation | p50 rotating | p50 ratio | p99 no rotation | p99 rotating | throughput no rotation | throughput rotating |\n|---|---|---|---|---|---|---|---|\n")
		for _, x := range rows {
			w("| %s | %s | %s | %.2f× | %s | %s | %.0f/s | %.0f/s |\n", x.name, Dur(x.base.P50()), Dur(x.rot.P50()), p50Ratio(x.rot, x.base),
				Dur(x.base.P99()), Dur(x.rot.P99()), x.base.Throughput(), x.rot.Throughput())
		}
	}

	if cc := r.CCRotation; cc != nil {
		w("### Consumer-secret rotation under load\n\nConnection `cc` (`auth_flow=client_credentials` on the emulator's External Client App) with\n")
		w("`credentials_rotation_connection=ccadmin` (a `jwt_bearer` connection logging in as the deploy user, who holds *External\n")
		w("Client App Developer* and *View Client Secret*; the org allows ECA consumer secrets over REST) and `credentials_overlap=1m`,\n")
		w("the plugin's minimum. Once per round, `connections/cc/credentials/rotate` (stage a new pair at Salesforce, promote it, prove\n")
		w("it with a token request, move reads to it), then `connections/cc/credentials/rotation` polled until idle: after the overlap\n")
		w("the previous pair is deleted at Salesforce, by the periodic func or by a rotate call that joins the rotation. %d clients\n", r.Plan.CCCached)
		w("read a shared role and %d a per_lease role of `cc` throughout, against the same readers in a %s window with no rotation\n", r.Plan.CCCold, r.Plan.CCWindow)
		w("(order alternating per round). The ratio is the rotating window's p50 over the other's, per round, then the median.\n\n")
		readers(readerRow{"cached (shared)", cc.BaseCached, cc.RotCached}, readerRow{"cold (per_lease)", cc.BaseCold, cc.RotCold})
		w("\nThe rotate call itself (stage, promote, prove, switch) took %s (median). Reads that started while it ran:\n\n", Dur(MedianDur(cc.Calls)))
		w("| readers | reads | p50 | p99 | max | p50 ratio vs no rotation |\n|---|---|---|---|---|---|\n")
		for _, x := range []readerRow{{"cached (shared)", cc.BaseCached, cc.CallCached}, {"cold (per_lease)", cc.BaseCold, cc.CallCold}} {
			w("| %s | %d | %s | %s | %s | %.2f× |\n", x.name, x.rot.N(), Dur(x.rot.P50()), Dur(x.rot.P99()), Dur(x.rot.Max()), p50Ratio(x.rot, x.base))
		}
		w("\nRotations completed: %d (median %s from rotate to idle, the 1m overlap included); consumer credential version %d → %d;\n",
			cc.Rotations, Dur(MedianDur(cc.Durations)), cc.VersionBefore, cc.VersionAfter)
		w("failed reads: %d.\n\n", cc.Failed)
		writeErrors(b, append(append([]string{}, cc.FailMsgs...), cc.Errors...))
	}

	if ts := r.TenantRotation; ts != nil {
		w("### Tenant-secret rotation\n\nConnection `ts` (logging in as the deploy user, who holds *Manage Encryption Keys*) with a `data` tenant secret for\n")
		w("the org's BYOK certificate. `connections/ts/tenant-secrets/data/rotate` %d times back to back per round: 32 random bytes\n", r.Plan.TSRotations)
		w("sealed in storage, wrapped with RSA-OAEP for the certificate, uploaded as a `TenantSecret` over REST and read back; the\n")
		w("emulator runs with `-tenant-secret-min-interval 1ms` so that uploads may repeat (Salesforce waits 24 h). First alone,\n")
		w("after %s of one client's cold mints (per_lease reads of a role of `ts`) alone; then while that client mints and %d read a\n", r.Plan.TSWindow, r.Plan.TSCached)
		w("shared role of `ts`, against the same readers in a %s window with no rotation. No target but no failed read and every\n", r.Plan.TSWindow)
		w("rotation completing. Against a cold mint (one token request and a lease), a rotate makes four Salesforce calls in a\n")
		w("row — its own login (a mint), the upload (the emulator unwraps it with the certificate's key, trying SHA-512 then SHA-1\n")
		w("padding), the read-back of the export, the revocation of its session — and five storage writes (the sealed secret, the\n")
		w("rotation recorded as generated, then uploaded, the export, the new active version), the state written before each call,\n")
		w("so that a crash anywhere resumes without a second upload. Alone that comes to %.2f× a mint; with the cores busy\n", p50Ratio(ts.QuietRotate, ts.QuietMint))
		w("serving the readers, each of its round trips in a row waits for one, so the multiple grows (%.2f×).\n\n", p50Ratio(ts.Rotate, ts.BaseCold))
		w("| | p50 | p99 | max | p50 ratio |\n|---|---|---|---|---|\n")
		w("| rotate call, alone | %s | %s | %s | %.2f× a cold mint alone |\n", Dur(ts.QuietRotate.P50()), Dur(ts.QuietRotate.P99()), Dur(ts.QuietRotate.Max()), p50Ratio(ts.QuietRotate, ts.QuietMint))
		w("| cold mint alone (1 client, per_lease) | %s | %s | %s | |\n", Dur(ts.QuietMint.P50()), Dur(ts.QuietMint.P99()), Dur(ts.QuietMint.Max()))
		w("| rotate call, readers running | %s | %s | %s | %.2f× a cold mint with the same readers |\n", Dur(ts.Rotate.P50()), Dur(ts.Rotate.P99()), Dur(ts.Rotate.Max()), p50Ratio(ts.Rotate, ts.BaseCold))
		w("| cold mint, readers running, no rotation | %s | %s | %s | |\n\n", Dur(ts.BaseCold.P50()), Dur(ts.BaseCold.P99()), Dur(ts.BaseCold.Max()))
		readers(readerRow{"cached (shared)", ts.BaseCached, ts.RotCached}, readerRow{"cold (per_lease, 1 client)", ts.BaseCold, ts.RotCold})
		w("\nRotations completed: %d; active version %d → %d; failed reads: %d.\n\n", ts.Rotations, ts.VersionBefore, ts.VersionAfter, ts.Failed)
		writeErrors(b, append(append([]string{}, ts.FailMsgs...), ts.Errors...))
	}
}

// readerRow is one kind of reader's rounds with and without a rotation.
type readerRow struct {
	name      string
	base, rot Rounds
}
