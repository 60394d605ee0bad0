package agent

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	"github.com/openai/openai-go/v3/packages/ssestream"
)

// sseReadBuffer is the line buffer of an upstream answer's reader. A
// streamed chunk's line is a few hundred bytes; a longer one is gathered
// across reads.
const sseReadBuffer = 1 << 10

// sseDecoder reads an upstream's text/event-stream answer exactly as the
// SDK's own decoder does (ssestream.NewDecoder's default), with a 1 KiB
// line buffer instead of the SDK's bufio.Scanner, whose buffer starts at
// 4 KiB: each streaming run holds one for its whole answer.
type sseDecoder struct {
	rc   io.ReadCloser
	r    *bufio.Reader
	long []byte // a line longer than the buffer, gathered
	eof  bool   // the last line has been read
	evt  ssestream.Event
	err  error
}

func newSSEDecoder(rc io.ReadCloser) *sseDecoder {
	return &sseDecoder{rc: rc, r: bufio.NewReaderSize(rc, sseReadBuffer)}
}

// line returns the next line without its line ending (LF, or CRLF as
// bufio.ScanLines drops it); the last line may lack one. It is valid
// until the next call.
func (d *sseDecoder) line() ([]byte, error) {
	if d.eof {
		return nil, io.EOF
	}
	if cap(d.long) > 4*sseReadBuffer {
		d.long = nil // a long line's room is not kept for the whole answer
	}
	b, err := d.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		d.long = append(d.long[:0], b...)
		for errors.Is(err, bufio.ErrBufferFull) && len(d.long) <= maxSSELine {
			b, err = d.r.ReadSlice('\n')
			d.long = append(d.long, b...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, bufio.ErrTooLong
		}
		b = d.long
	}
	switch {
	case err == nil:
		b = b[:len(b)-1]
	case errors.Is(err, io.EOF) && len(b) > 0:
		d.eof = true // the last line, without a line ending
	default:
		return nil, err
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b, nil
}

// maxSSELine is the longest line read, as the SDK's scanner allows.
const maxSSELine = bufio.MaxScanTokenSize << 9

// Next reads the next event: its lines up to a blank one.
func (d *sseDecoder) Next() bool {
	if d.err != nil {
		return false
	}
	event := ""
	var data []byte
	for {
		txt, err := d.line()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				d.err = err
			}
			return false
		}
		if len(txt) == 0 {
			if len(data) == 0 {
				event = ""
				continue
			}
			d.evt = ssestream.Event{Type: event, Data: data}
			return true
		}
		name, value, _ := bytes.Cut(txt, []byte(":"))
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(name) {
		case "event":
			event = string(value)
		case "data":
			data = append(data, value...)
			data = append(data, '\n')
		}
	}
}

func (d *sseDecoder) Event() ssestream.Event { return d.evt }

func (d *sseDecoder) Close() error { return d.rc.Close() }

func (d *sseDecoder) Err() error { return d.err }
