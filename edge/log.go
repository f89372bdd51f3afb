package edge

// Log keys used across edge, so logs can be searched by them.
const (
	logKeySnapshot = "snapshot_version"
	logKeyErr      = "err"
	logKeyID       = "id" // always a redacting engine.IDNumber, never a plain string
	logKeyDevice   = "device"
)
