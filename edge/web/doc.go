// Package web serves the officer's page of a running device: the live stream of decisions,
// the snapshot, sync, reader, gate and peer state, officer actions behind a PIN (manual
// entry, override, commuter registration), JSON endpoints and Prometheus metrics. The page's
// files are embedded (static/) and load nothing from elsewhere.
//
// web may import edge, engine and sync/...; only cmd and edge/demo import web.
package web
