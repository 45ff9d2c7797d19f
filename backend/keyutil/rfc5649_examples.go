package keyutil

import (
	"encoding/hex"
	"strings"
)

// RFC5649Example is one of the examples of RFC 5649 §6, kept in one place for the tests of
// every implementation (this package's wrap, the emulator's unwrap).
type RFC5649Example struct{ Name, KEK, Key, Wrap string }

// RFC5649Examples are both examples of §6 under the same 192-bit KEK: 20 bytes (the six
// rounds of RFC 3394's W) and 7 bytes (the single-block case).
var RFC5649Examples = []RFC5649Example{
	{"20 bytes", "5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8", "c37b7e6492584340 bed1220780894115 5068f738",
		"138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a"},
	{"7 bytes", "5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8", "466f7250617369", "afbeb0f07dfbf541 9200f2ccb50bb24f"},
}

// Bytes decodes the example's hex, written as the RFC prints it.
func (x RFC5649Example) Bytes() (kek, key, wrap []byte) {
	d := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			panic("keyutil: a malformed RFC 5649 example: " + err.Error())
		}
		return b
	}
	return d(x.KEK), d(x.Key), d(x.Wrap)
}
