package central

import (
	"bufio"
	"bytes"
	"io"
)

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 64<<10) }

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }
