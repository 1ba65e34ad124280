package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/sluice-stream/sluice/engine"
)

// The reliable ingest endpoint: POST /api/ingest/{stream}.
//
// Request: a body of newline-delimited records (a "\r" before "\n" is
// removed; bytes that are not UTF-8 pass through unchanged) and two
// headers: Sluice-Producer (the producer's id) and Sluice-Sequence (the
// request's number, increasing per producer from 1).
//
// Replies, all JSON:
//
//	200 {"stream","producer","sequence","records","duplicate"}  stored (or stored before: duplicate)
//	400 {"error"}  malformed headers, an empty body, a line over --max-line-bytes
//	404 {"error"}  no ingest stream of that name
//	409 {"error"}  a sequence lower than one acknowledged and never stored
//	413 {"error"}  a body over --max-request-bytes
//	429 {"error"}  over the rate limit; Retry-After says when to retry
//	503 {"error"}  not running, or the records could not be made durable; retry
//
// A 200 comes only after the records are synced to the write-ahead log and
// registered in the metadata log. For a 4xx nothing was stored. After a 503
// (or no reply at all) the records may have been registered all the same;
// retrying the request is always safe: a request stored before is
// acknowledged as a duplicate and stored once.
const (
	headerProducer = "Sluice-Producer"
	headerSequence = "Sluice-Sequence"
)

// brokenRequests numbers the requests of a build with brokenDedupe.
var brokenRequests atomic.Uint64

type ingestReply struct {
	Stream    string `json:"stream"`
	Producer  string `json:"producer"`
	Sequence  uint64 `json:"sequence"`
	Records   int    `json:"records"`
	Duplicate bool   `json:"duplicate"`
}

type ingestHandler struct {
	c            *engine.Context
	maxBody      int64
	maxLineBytes int
}

func (h *ingestHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	stream := r.PathValue("stream")
	producer, seq, err := parseIngestHeaders(r.Header)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	records, status, err := h.readRecords(w, r)
	if err != nil {
		writeError(w, status, err.Error())
		return
	}
	if brokenDedupe {
		producer = fmt.Sprintf("%s~%d", producer, brokenRequests.Add(1))
	}
	res, err := h.c.Ingest(r.Context(), stream, producer, seq, records)
	if err != nil {
		h.writeIngestError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ingestReply{Stream: stream, Producer: producer, Sequence: seq,
		Records: res.Records, Duplicate: res.Duplicate})
}

func parseIngestHeaders(hdr http.Header) (string, uint64, error) {
	producer := strings.TrimSpace(hdr.Get(headerProducer))
	if producer == "" {
		return "", 0, fmt.Errorf("missing header %s: name the producer (any stable id)", headerProducer)
	}
	if len(producer) > 256 {
		return "", 0, fmt.Errorf("header %s is longer than 256 bytes", headerProducer)
	}
	text := strings.TrimSpace(hdr.Get(headerSequence))
	if text == "" {
		return "", 0, fmt.Errorf("missing header %s: number each request of a producer, from 1 up", headerSequence)
	}
	seq, err := strconv.ParseUint(text, 10, 64)
	if err != nil || seq == 0 {
		return "", 0, fmt.Errorf("header %s %q must be a whole number from 1 to %d", headerSequence, text, uint64(math.MaxUint64))
	}
	return producer, seq, nil
}

// readRecords reads the body as lines, within the size limits, as
// bufio.ScanLines splits them: on "\n", a "\r" before it dropped, a last
// line without "\n" kept. The records are substrings of one copy of the
// body: one allocation a request instead of one a line.
func (h *ingestHandler) readRecords(w http.ResponseWriter, r *http.Request) ([]string, int, error) {
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= h.maxBody {
		buf.Grow(int(n) + bytes.MinRead) // ReadFrom wants MinRead free to stop growing
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge,
				fmt.Errorf("the body is over %d bytes: send fewer lines per request", h.maxBody)
		}
		return nil, http.StatusBadRequest, fmt.Errorf("reading the body: %v", err)
	}
	if buf.Len() == 0 {
		return nil, http.StatusBadRequest, errors.New("the body is empty: send one record per line")
	}
	body := buf.String()
	records := make([]string, 0, strings.Count(body, "\n")+1)
	for n := 1; body != ""; n++ {
		line, rest, _ := strings.Cut(body, "\n")
		body = rest
		line = strings.TrimSuffix(line, "\r")
		if len(line) > h.maxLineBytes {
			return nil, http.StatusBadRequest,
				fmt.Errorf("line %d is %d bytes, over --max-line-bytes %d; nothing was stored", n, len(line), h.maxLineBytes)
		}
		records = append(records, line)
	}
	return records, 0, nil
}

func (h *ingestHandler) writeIngestError(w http.ResponseWriter, err error) {
	var limited *engine.RateLimitError
	switch {
	case errors.As(err, &limited):
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(limited.RetryAfter.Seconds()))))
		writeError(w, http.StatusTooManyRequests, err.Error())
	case errors.Is(err, engine.ErrUnknownStream):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, engine.ErrSequenceRejected):
		writeError(w, http.StatusConflict, err.Error())
	default:
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, err.Error())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
