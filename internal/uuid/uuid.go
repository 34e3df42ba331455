// Package uuid makes random (version 4) UUIDs: claim tokens, run ids the
// daemon and the bench choose, and ids in tests. It is the one copy; the
// project needs nothing else of a UUID library.
package uuid

import (
	"crypto/rand"
	"fmt"
)

// New returns a random version 4, variant 1 (RFC 9562) UUID in its
// canonical form, e.g. 2c3d4e5f-0a1b-4c2d-8e3f-405162738495.
func New() string {
	var b [16]byte
	_, _ = rand.Read(b[:])  // never fails (crypto/rand: Read crashes the program rather than return an error)
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // variant 10xx
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
