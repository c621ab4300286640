// Package group holds what consumer groups need on a node: their committed
// offsets, kept durably in a log of their own (Store), and the
// sense_consumer_group_lag metric. The Kafka edge commits and fetches
// offsets through it, and processors will too.
//
// The on-disk format is in offsets.go and docs/storage.md.
package group
