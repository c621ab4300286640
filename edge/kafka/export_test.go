package kafka

// Internals the external tests (package kafka_test) look at.

// NumSupported is how many API keys the server advertises.
var NumSupported = len(supported)

// VersionRange returns the versions served for an API key.
func VersionRange(key int16) (lo, hi int16, ok bool) {
	v, ok := versions(key)
	return v.min, v.max, ok
}
