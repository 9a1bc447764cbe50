package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzScan damages a valid segment (byte flips, a truncation, appended
// bytes) and checks that the scan never panics and never yields a record
// that is not one of the originals, in the original order.
func FuzzScan(f *testing.F) {
	f.Add(uint8(10), []byte{}, uint16(0xffff), []byte{})
	f.Add(uint8(10), []byte{0, 40, 0x10}, uint16(0xffff), []byte{})
	f.Add(uint8(5), []byte{}, uint16(300), []byte{})
	f.Add(uint8(3), []byte{}, uint16(0xffff), []byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(uint8(8), []byte{0, 0, 'X', 1, 2, 3}, uint16(2000), []byte("tail"))
	f.Fuzz(func(t *testing.T, n uint8, flips []byte, trunc uint16, tail []byte) {
		seg := append([]byte(nil), segHeader...)
		for i := range int(n % 32) {
			r := testRecSize(i, i*13%200)
			seg = appendFrame(seg, &r)
		}
		for k := 0; k+2 < len(flips); k += 3 { // (position uint16, xor byte)
			pos := int(binary.LittleEndian.Uint16(flips[k:])) % len(seg)
			seg[pos] ^= flips[k+2]
		}
		if int(trunc) < len(seg) {
			seg = seg[:trunc]
		}
		seg = append(seg, tail...)
		prev := -1
		_, err := scan(bytes.NewReader(seg), int64(len(seg)), func(idx int, off int64, frameLen int, payload []byte) (bool, error) {
			r, err := decodePayload(payload)
			if err != nil {
				t.Fatalf("yielded an unparsable payload: %v", err)
			}
			i := recIndex(t, r)
			if i <= prev {
				t.Fatalf("record %d after %d", i, prev)
			}
			prev = i
			return true, nil
		})
		if err != nil && !errors.Is(err, errVersion) { // a damaged version field is an error
			t.Fatal(err)
		}
	})
}
