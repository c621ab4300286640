package server

// SetMigrateHook makes the migrator call f after each batch it copies; an
// error stops the step there, as a crash would. It returns the undo.
func SetMigrateHook(f func(stage string) error) func() {
	migrateHook.Store(&f)
	return func() { migrateHook.Store(nil) }
}
