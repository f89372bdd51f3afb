package web

// Log keys.
const (
	logKeyOfficer = "officer"
	logKeyRemote  = "remote"
	logKeyErr     = "err"
)
