package router

import (
	"encoding/binary"
	"math/bits"
	"strconv"
)

// XXH64 primes.
const (
	prime1 uint64 = 0x9E3779B185EBCA87
	prime2 uint64 = 0xC2B2AE3D27D4EB4F
	prime3 uint64 = 0x165667B19E3779F9
	prime4 uint64 = 0x85EBCA77C2B2AE63
	prime5 uint64 = 0x27D4EB2F165667C5
)

// HashKey returns XXH64 of key with seed 0, the hash by which Route places
// keyed events. It is part of Sense's placement contract: it never depends
// on the process, the machine or the release, so a client or an audit can
// compute it too (any XXH64 implementation, such as
// github.com/cespare/xxhash/v2's Sum64, gives the same value).
func HashKey(key []byte) uint64 {
	n := len(key)
	b := key
	var h uint64
	if n >= 32 {
		// The initial accumulators for seed 0: seed+prime1+prime2, seed+prime2,
		// seed, seed-prime1, all modulo 2^64 (a variable makes the constant
		// arithmetic wrap).
		p1 := prime1
		v1 := p1 + prime2
		v2 := prime2
		v3 := uint64(0)
		v4 := -p1
		for len(b) >= 32 {
			v1 = round(v1, binary.LittleEndian.Uint64(b[0:8]))
			v2 = round(v2, binary.LittleEndian.Uint64(b[8:16]))
			v3 = round(v3, binary.LittleEndian.Uint64(b[16:24]))
			v4 = round(v4, binary.LittleEndian.Uint64(b[24:32]))
			b = b[32:]
		}
		h = bits.RotateLeft64(v1, 1) + bits.RotateLeft64(v2, 7) +
			bits.RotateLeft64(v3, 12) + bits.RotateLeft64(v4, 18)
		h = mergeRound(h, v1)
		h = mergeRound(h, v2)
		h = mergeRound(h, v3)
		h = mergeRound(h, v4)
	} else {
		h = prime5
	}
	h += uint64(n)
	for ; len(b) >= 8; b = b[8:] {
		h ^= round(0, binary.LittleEndian.Uint64(b[:8]))
		h = bits.RotateLeft64(h, 27)*prime1 + prime4
	}
	if len(b) >= 4 {
		h ^= uint64(binary.LittleEndian.Uint32(b[:4])) * prime1
		h = bits.RotateLeft64(h, 23)*prime2 + prime3
		b = b[4:]
	}
	for _, c := range b {
		h ^= uint64(c) * prime5
		h = bits.RotateLeft64(h, 11) * prime1
	}
	h ^= h >> 33
	h *= prime2
	h ^= h >> 29
	h *= prime3
	h ^= h >> 32
	return h
}

func round(acc, input uint64) uint64 {
	acc += input * prime2
	acc = bits.RotateLeft64(acc, 31)
	return acc * prime1
}

func mergeRound(acc, val uint64) uint64 {
	acc ^= round(0, val)
	return acc*prime1 + prime4
}

// mix is the MurmurHash3 fmix64 finalizer. It is a bijection, so distinct
// seeds give distinct weights for the same key hash, and rendezvous hashing
// never sees a tie between buffers with distinct seeds.
func mix(k uint64) uint64 {
	k ^= k >> 33
	k *= 0xff51afd7ed558ccd
	k ^= k >> 33
	k *= 0xc4ceb9fe1a85ec53
	k ^= k >> 33
	return k
}

// BufferSeed returns the rendezvous seed of buffer index of hub: XXH64 of
// the text "<hub>#<index>", such as "tangier#0". It does not depend on the
// pipeline, the lane or the hub's position in the config, so that a key's
// buffer is named by (hub, index) alone. A keyed event goes to the eligible
// buffer with the highest weight, where weight = fmix64(HashKey(key) ^
// BufferSeed(hub, index)).
func BufferSeed(hub string, index int) uint64 {
	var buf [maxHubName + 1 + 20]byte
	b := append(buf[:0], hub...)
	b = append(b, '#')
	b = strconv.AppendInt(b, int64(index), 10)
	return HashKey(b)
}

// Weight returns the rendezvous weight of a buffer whose seed is seed, for a
// key whose hash is keyHash. It is exported so that tools can show why a
// key went where it did.
func Weight(keyHash, seed uint64) uint64 { return mix(keyHash ^ seed) }
