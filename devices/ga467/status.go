package ga467

import "fmt"

var statusText = map[byte]string{
	SWOK:           "OK",
	SWFindOK:       "card found",
	SWNoContent:    "the card has no content for this item",
	SWChecksum:     "the reader saw a checksum error in the host frame",
	SWLength:       "the reader saw a length error in the host frame",
	SWBadCommand:   "bad command, parameter or sequence",
	SWNotPermitted: "operation not permitted",
	SWUnrecognised: "unrecognised error",
	SWCardAuthSAM:  "the card failed to authenticate the SAM",
	SWSAMAuthCard:  "the SAM failed to authenticate the card",
	SWVerify:       "information verification error",
	SWCardType:     "unrecognised card type",
	SWReadFailed:   "card read failed (card removed?)",
	SWRandom:       "failed to get a random number",
	SWSAMSelfTest:  "SAM self-test failed",
	SWSAMNotAuth:   "SAM not authorised",
	SWNoCard:       "no card on the reader",
	SWSelectFailed: "select card failed",
}

// StatusError is a reader's refusal of a command: the command and the SW3 status it answered.
type StatusError struct {
	Cmd, Para byte
	Code      byte
}

func (e *StatusError) Error() string {
	text, ok := statusText[e.Code]
	if !ok {
		text = "unknown status"
	}
	return fmt.Sprintf("ga467: command %02X %02X: status %02X: %s", e.Cmd, e.Para, e.Code, text)
}

// SAMFault reports whether the status is a fault of the reader's SAM module (an officer must
// check the reader), as opposed to a card or line problem.
func (e *StatusError) SAMFault() bool {
	switch e.Code {
	case SWSAMSelfTest, SWSAMNotAuth, SWRandom, SWCardAuthSAM:
		return true
	}
	return false
}

// Is lets errors.Is(err, &StatusError{Code: c}) match any error with that code.
func (e *StatusError) Is(target error) bool {
	t, ok := target.(*StatusError)
	return ok && t.Code == e.Code && (t.Cmd == 0 || t.Cmd == e.Cmd)
}
