package router

import "testing"

// xxh64Vectors are XXH64 (seed 0) of the first n bytes of hashPattern, for
// n = 0..71 and a few longer lengths, computed with the reference C library
// (libxxhash 0.8.1, XXH64(data, n, 0)). They cover every branch: the 1-byte
// tail, the 4-byte step, the 8-byte loop and the 32-byte stripes.
var xxh64Lengths = []int{
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
	20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37,
	38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
	56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71,
	100, 127, 128, 129, 200,
}

var xxh64Vectors = []uint64{
	0xef46db3751d8e999, 0x1f25c8d0bc1f4bb6, 0xf5bedec232706303, 0x31d2363f52e564c9,
	0x9bb64b7d66ee9fda, 0xc7608efddb7051fe, 0x61436fb28d5ce4c4, 0x9a7b149959ce60d8,
	0xdab99d95c6f90092, 0x170bb6bf975b4c02, 0xbd7277d7e2d8a98c, 0x7a52cc9457cf1a1f,
	0xd52e407833af5133, 0xf78b031308f5bfc8, 0xc7f1d4d0acfa5a14, 0x1b47cb8243cc8e32,
	0x434850232b787be2, 0x1efa7025f1b97a7a, 0x28791d24c4cf5e78, 0x3e91f7c3171250d0,
	0x18ae385ada6b00cb, 0xc075185602af71eb, 0xb2ceb44aa258ff36, 0x36a34f92fb0205c0,
	0xc47c71bd4694ff81, 0xb13f23e884186902, 0x76a5852d6e1cab15, 0x9ab0b90755292fc8,
	0x729299f92ff25c75, 0x6cd01834be7d2537, 0x4bdd83b2b139424f, 0xa2aa5f33cc4a6119,
	0x23c3c17ef790fd97, 0x50a7cfc7ba588784, 0xc3e49b08a6aad624, 0xa5b3456011d2913b,
	0xc0b52b0dcc5e3f7f, 0xe32ef63802f5a3fd, 0xa4696f18f9acce05, 0x880bbeea606e4b37,
	0xb620306b253d76b6, 0x8d56b39a38735fa8, 0xd50fb183d9c4f252, 0x71784bdf7cc20cee,
	0xa4b19436ab40edb0, 0x86faee00897c4b41, 0xd524c35b647262ac, 0xa7c5465cc5ad205e,
	0xda76bbb3544338ee, 0x756d92b5ff28e5bc, 0x3feb2f60dd4d0dbd, 0xf1639a50dba4740b,
	0xe3bba384bc67d6ee, 0x84a096f591e6f04e, 0x6a7e7d3192910190, 0x0a815463dd86507a,
	0xed350c04e51a88e9, 0xe1d288e4de03cb88, 0xf6e789b251ea5e64, 0xc7a61c29cfafe592,
	0x00f7f0730e736d93, 0xea5d9295b669d981, 0xf1a1a311ad02b5b1, 0x5e3e54b431c7493c,
	0x0eb64b3ef6eeb01f, 0xa383b724b2bd12f1, 0xb6d55f01384314c2, 0x36c3014e8cf0ef72,
	0x69569d3f713f823e, 0x57793f2c918c48a5, 0x9cc0bdc853243c07, 0xfdb8dfc5700141a7,
	0xa61f8d4c170fe531, 0x0c2b3713c3edbeb3, 0x46fbcfbf0150793f, 0x3eb5d118151c8303,
	0xa6cb3c09bc829b24,
}

// hashPattern returns the bytes the vectors were computed over:
// byte i is (7i+3) mod 256.
func hashPattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

func TestHashKeyMatchesReferenceXXH64(t *testing.T) {
	if len(xxh64Lengths) != len(xxh64Vectors) {
		t.Fatalf("%d lengths, %d vectors", len(xxh64Lengths), len(xxh64Vectors))
	}
	data := hashPattern(200)
	for i, n := range xxh64Lengths {
		if got := HashKey(data[:n]); got != xxh64Vectors[i] {
			t.Errorf("HashKey(pattern[:%d]) = %#016x, want %#016x", n, got, xxh64Vectors[i])
		}
	}
	for _, tt := range []struct {
		in   string
		want uint64
	}{
		{"tangier#0", 0xf5578a11afa12701},
		{"dakar#3", 0x9095bda93dd9e0e1},
		{"user-42", 0x397e9d3a76af7c81},
		{"The quick brown fox jumps over the lazy dog", 0x0b242d361fda71bc},
	} {
		if got := HashKey([]byte(tt.in)); got != tt.want {
			t.Errorf("HashKey(%q) = %#016x, want %#016x", tt.in, got, tt.want)
		}
	}
}

func TestBufferSeed(t *testing.T) {
	if got, want := BufferSeed("tangier", 0), uint64(0xf5578a11afa12701); got != want {
		t.Errorf("BufferSeed(tangier, 0) = %#016x, want XXH64(\"tangier#0\") = %#016x", got, want)
	}
	if got, want := BufferSeed("dakar", 3), uint64(0x9095bda93dd9e0e1); got != want {
		t.Errorf("BufferSeed(dakar, 3) = %#016x, want XXH64(\"dakar#3\") = %#016x", got, want)
	}
}

func TestMixIsBijectiveOnSamples(t *testing.T) {
	seen := make(map[uint64]uint64, 1<<16)
	for i := uint64(0); i < 1<<16; i++ {
		for _, x := range []uint64{i, i << 48, ^i} {
			w := mix(x)
			if prev, dup := seen[w]; dup && prev != x {
				t.Fatalf("mix(%#x) = mix(%#x) = %#x", x, prev, w)
			}
			seen[w] = x
		}
	}
}
