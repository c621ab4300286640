package server

// SetMigrateHook makes the migrator call f after each batch it copies
// (stage "copied") and before each trim of a source past a step done
// ("trim"); an error stops the step there, as a crash would. It returns
// the undo.
func SetMigrateHook(f func(stage string) error) func() {
	migrateHook.Store(&f)
	return func() { migrateHook.Store(nil) }
}

// Snapshots returns how many raft snapshots s's replica of the buffer key
// (pipeline/hub/partition) installed; 0 when s holds none.
func Snapshots(s *Server, key string) uint64 {
	if s.cluster == nil {
		return 0
	}
	g := s.cluster.host.Group(key)
	if g == nil {
		return 0
	}
	return g.Snapshots()
}
