package server

// SetMigrateHook makes the migrator call f after each batch it copies
// (stage "copied") and before each trim of a source past a step done
// ("trim"); an error stops the step there, as a crash would. It returns
// the undo.
func SetMigrateHook(f func(stage string) error) func() {
	migrateHook.Store(&f)
	return func() { migrateHook.Store(nil) }
}
