package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"time"
)

// The stores keep each record as its canonical encoding (one column,
// "body"), next to the few columns they filter and order by (seq, time,
// alertname; on PostgreSQL also event_id) and its hash. A scan then reads
// five or six columns per row instead of twenty-one and decodes the rest
// here, which is what makes exports fast. The stores take seq, time and
// alertname (and event_id) from their own columns, not from the body, so
// editing either a column or the body makes the record's content no longer
// match its hash.

// ErrMalformed is returned by DecodeCanonical for bytes that are not a
// canonical encoding (a stored body that was edited by hand).
var ErrMalformed = errors.New("audit: malformed canonical encoding")

// ChainEncoded is Chain that also returns each record's canonical encoding
// (what the stores keep); len(bodies[i]) is the record's size in the stats.
func ChainEncoded(headSeq int64, headHash string, recs []Record) (int64, string, [][]byte) {
	bodies := make([][]byte, len(recs))
	ends := make([]int, len(recs))
	buf := make([]byte, 0, 512*len(recs)) // all bodies, one after the other: one allocation, not several per record
	for i := range recs {
		headSeq++
		recs[i].Seq, recs[i].PrevHash = headSeq, headHash
		start := len(buf)
		buf = AppendCanonical(buf, &recs[i])
		sum := sha256.Sum256(buf[start:])
		recs[i].Hash = hex.EncodeToString(sum[:])
		ends[i] = len(buf)
		headHash = recs[i].Hash
	}
	start := 0
	for i, end := range ends {
		bodies[i] = buf[start:end:end]
		start = end
	}
	return headSeq, headHash, bodies
}

// DecodeCanonical parses b, a canonical encoding (AppendCanonical), into
// every field of r but Hash, which the encoding does not hold. The strings
// share one copy of b; r.Details aliases b (nil when empty), so it is valid
// as long as b is. Re-encoding the result gives b back exactly when b was
// made by AppendCanonical. On error r is left with zero fields (Hash
// untouched).
func DecodeCanonical(b []byte, r *Record) error { return decode(b, "", r) }

// decode is DecodeCanonical taking the strings from s, which holds the
// same bytes as b (or is empty: then they are copied from b once).
func decode(b []byte, s string, r *Record) error {
	var f [21][2]int // offsets of the 21 netstrings' contents
	i := 0
	for k := range f {
		n, j := 0, i
		for j < len(b) && b[j] >= '0' && b[j] <= '9' && j-i < 10 {
			n = n*10 + int(b[j]-'0')
			j++
		}
		if j == i || j >= len(b) || b[j] != ':' || n > len(b)-j-2 || b[j+1+n] != ',' {
			*r = Record{Hash: r.Hash}
			return ErrMalformed
		}
		f[k] = [2]int{j + 1, j + 1 + n}
		i = j + 2 + n
	}
	if i != len(b) || string(b[f[0][0]:f[0][1]]) != Version {
		*r = Record{Hash: r.Hash}
		return ErrMalformed
	}
	if s == "" {
		s = string(b[:f[19][0]]) // everything up to details, once
	}
	str := func(k int) string { return s[f[k][0]:f[k][1]] }
	seq, err1 := strconv.ParseInt(str(1), 10, 64)
	eventID, err2 := strconv.ParseInt(str(2), 10, 64)
	at, err3 := parseTime(str(3))
	if err1 != nil || err2 != nil || err3 != nil {
		*r = Record{Hash: r.Hash}
		return ErrMalformed
	}
	*r = Record{
		Seq: seq, EventID: eventID, Time: at,
		IncidentID: str(4), CorrelationID: str(5), AlertName: str(6), Fingerprint: str(7), Namespace: str(8),
		Target:   Target{Kind: str(9), Namespace: str(10), Name: str(11)},
		Priority: str(12), Type: str(13), Action: str(14), Mode: str(15), Outcome: str(16), Reason: str(17),
		Actor: str(18), Hash: r.Hash,
	}
	if f[20][1] <= len(s) {
		r.PrevHash = str(20)
	} else {
		r.PrevHash = string(b[f[20][0]:f[20][1]])
	}
	if f[19][1] > f[19][0] {
		r.Details = b[f[19][0]:f[19][1]:f[19][1]]
	}
	return nil
}

// parseTime parses TimeFormat quickly (the layout is fixed), falling back
// to time.Parse for anything else.
func parseTime(s string) (time.Time, error) {
	if len(s) == len(TimeFormat) && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':' && s[16] == ':' &&
		s[19] == '.' && s[26] == 'Z' {
		num := func(lo, hi int) (int, bool) {
			n := 0
			for k := lo; k < hi; k++ {
				c := s[k]
				if c < '0' || c > '9' {
					return 0, false
				}
				n = n*10 + int(c-'0')
			}
			return n, true
		}
		y, ok1 := num(0, 4)
		mo, ok2 := num(5, 7)
		d, ok3 := num(8, 10)
		h, ok4 := num(11, 13)
		mi, ok5 := num(14, 16)
		sec, ok6 := num(17, 19)
		us, ok7 := num(20, 26)
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 && sec < 60 {
			t := time.Date(y, time.Month(mo), d, h, mi, sec, us*1000, time.UTC)
			if t.Day() == d { // not normalised (e.g. Feb 30)
				return t, nil
			}
		}
	}
	return time.Parse(TimeFormat, s)
}
