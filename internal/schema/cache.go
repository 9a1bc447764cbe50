package schema

import (
	"time"
	"unsafe"
)

// Caches of the encoder's hot path: a record's column names and its day
// repeat from one record to the next, so the work of encoding them is done
// once and copied after. Both are fixed-size and own their bytes: they
// never retain a caller's string and never allocate.

// nameCache maps field keys to their encoded name segments (the property
// name of a top-level field; what follows the groups' prefix of a grouped
// one: the two differ, so top is part of the key) and the segments'
// hashes. It is two-way set associative: a key lives in one of the two
// slots of its set; a new key takes the set's first slot and moves the one
// there to the second, so two keys that share a set both stay cached.
type nameCache [nameCacheSlots]cachedName

const (
	nameCacheBits  = 7
	nameCacheSlots = 1 << nameCacheBits // 64 sets of two: about 12 KiB
	maxCachedKey   = 32                 // longer keys are not cached
	maxCachedName  = 48                 // nor are keys whose encoded segment is longer
)

type cachedName struct {
	klen, nlen uint8
	top        bool
	key        [maxCachedKey]byte
	name       [maxCachedName]byte
	hash       uint64
}

func (s *cachedName) is(key string, top bool) bool {
	return int(s.klen) == len(key) && s.top == top && string(s.key[:s.klen]) == key
}

// set returns the first slot of key's set. It hashes where key's bytes
// are, not what they are: a program logs with a few dozen constant keys,
// each at its own address, so this spreads them as well as a hash of the
// text at a fraction of the cost. A key built at run time (a new address
// each time) just misses; lookup always compares the text.
func (c *nameCache) set(key string, top bool) int {
	p := uint64(uintptr(unsafe.Pointer(unsafe.StringData(key))))
	if top {
		p ^= 1 << 63
	}
	h := (p ^ uint64(len(key))<<48) * 0x9E3779B97F4A7C15 // Fibonacci hashing
	return int(h>>(64-nameCacheBits)) &^ 1
}

// lookup returns key's cached segment (valid until the next store) and
// its hash; ok is false when key is not cached.
func (c *nameCache) lookup(key string, top bool) (seg []byte, hash uint64, ok bool) {
	if len(key) == 0 || len(key) > maxCachedKey {
		return nil, 0, false
	}
	i := c.set(key, top)
	s := &c[i]
	if !s.is(key, top) {
		if s = &c[i+1]; !s.is(key, top) {
			return nil, 0, false
		}
	}
	return s.name[:s.nlen], s.hash, true
}

// store caches seg and its hash for key, if both fit.
func (c *nameCache) store(key string, top bool, seg []byte, hash uint64) {
	if len(key) == 0 || len(key) > maxCachedKey || len(seg) > maxCachedName {
		return
	}
	i := c.set(key, top)
	c[i+1] = c[i]
	s := &c[i]
	s.klen, s.nlen = uint8(copy(s.key[:], key)), uint8(copy(s.name[:], seg))
	s.top, s.hash = top, hash
}

// dayCache remembers the dates of the last two days formatted, so
// formatting another time of one of them costs a few divisions. Two,
// because a record's Time and a time field are often of different days (a
// field holding a start or a deadline): with one, each would evict the
// other, record after record.
type dayCache struct {
	days [2]cachedDay
	next uint8 // the slot the next miss fills
}

type cachedDay struct {
	ok  bool
	lo  int64    // Unix second of the day's start
	ymd [11]byte // "2006-01-02T"
}

// appendTime7 is appendTime7 with the day's date cached. The year must be
// 1..9999 (see dateTimeInRange).
func (c *dayCache) appendTime7(dst []byte, t time.Time) []byte {
	sec := t.Unix()
	d := &c.days[0]
	if !d.has(sec) {
		if d = &c.days[1]; !d.has(sec) {
			d = &c.days[c.next]
			c.next ^= 1
			u := t.UTC()
			hh, mm, ss := u.Clock()
			d.lo = sec - int64(hh*3600+mm*60+ss)
			var tmp [28]byte
			copy(d.ymd[:], appendTime7(tmp[:0], u))
			d.ok = true
		}
	}
	sod := int(sec - d.lo)
	var b [28]byte
	copy(b[:11], d.ymd[:])
	put2 := func(i, v int) {
		b[i] = byte('0' + v/10)
		b[i+1] = byte('0' + v%10)
	}
	put2(11, sod/3600)
	b[13] = ':'
	put2(14, sod/60%60)
	b[16] = ':'
	put2(17, sod%60)
	b[19] = '.'
	frac := t.Nanosecond() / 100
	for j := 26; j >= 20; j-- {
		b[j] = byte('0' + frac%10)
		frac /= 10
	}
	b[27] = 'Z'
	return append(dst, b[:]...)
}

func (d *cachedDay) has(sec int64) bool { return d.ok && sec >= d.lo && sec-d.lo < 86400 }
