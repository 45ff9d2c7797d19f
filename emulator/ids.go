package emulator

import (
	"crypto/rand"
	"math/big"
	"strings"
)

const (
	base62     = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	idSuffixes = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
)

// randomString draws n characters from alphabet with crypto/rand: tokens and
// consumer keys must not be guessable even in a test tool, since e2e tests
// treat them as secrets.
func randomString(alphabet string, n int) string {
	var b strings.Builder
	b.Grow(n)
	max := big.NewInt(int64(len(alphabet)))
	for i := 0; i < n; i++ {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic("emulator: crypto/rand: " + err.Error())
		}
		b.WriteByte(alphabet[v.Int64()])
	}
	return b.String()
}

// newID makes an 18-character Salesforce ID with the given 3-character key
// prefix ("00D" org, "005" user, "0Af" deploy request, "0H4" connected app).
func newID(prefix string) string {
	return to18(prefix + "0" + randomString(base62, 11))
}

// to18 adds the case-safe checksum Salesforce appends to 15-character IDs:
// for each 5-character chunk, a bit per upper-case letter picks one suffix
// character. Clients compare IDs in both lengths, so the suffix must be real.
func to18(id string) string {
	if len(id) != 15 {
		return id
	}
	suffix := make([]byte, 3)
	for chunk := 0; chunk < 3; chunk++ {
		bits := 0
		for i := 0; i < 5; i++ {
			c := id[chunk*5+i]
			if c >= 'A' && c <= 'Z' {
				bits |= 1 << i
			}
		}
		suffix[chunk] = idSuffixes[bits]
	}
	return id + string(suffix)
}

// sameID compares IDs the way Salesforce does: the first 15 characters are
// the ID (case-sensitive), the 3-character suffix is only a checksum.
func sameID(a, b string) bool {
	if len(a) < 15 || len(b) < 15 {
		return a == b
	}
	return a[:15] == b[:15]
}

func id15(id string) string {
	if len(id) >= 15 {
		return id[:15]
	}
	return id
}
