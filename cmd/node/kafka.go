package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/sluice-stream/sluice/engine"
	"github.com/sluice-stream/sluice/engine/kafka"
)

// kafkaURL is a parsed kafka://HOST:PORT[,HOST:PORT]/TOPIC[,TOPIC]?k=v.
type kafkaURL struct {
	brokers, topics []string
	query           map[string]string
}

// parseKafkaURL parses spec, naming flag in its errors; keys are the
// query keys accepted.
func parseKafkaURL(flag, spec string, keys ...string) (kafkaURL, error) {
	const form = "kafka://HOST:PORT[,HOST:PORT]/TOPIC[,TOPIC]"
	rest, ok := strings.CutPrefix(spec, "kafka://")
	if !ok {
		return kafkaURL{}, fmt.Errorf("%s %q: want %s", flag, spec, form)
	}
	rest, query, _ := strings.Cut(rest, "?")
	hosts, topics, _ := strings.Cut(rest, "/")
	var u kafkaURL
	for _, h := range strings.Split(hosts, ",") {
		_, port, err := net.SplitHostPort(h)
		if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
			return kafkaURL{}, fmt.Errorf("%s %q: broker %q is not HOST:PORT with a port from 1 to 65535; want %s", flag, spec, h, form)
		}
		u.brokers = append(u.brokers, h)
	}
	for _, t := range strings.Split(topics, ",") {
		if t == "" || strings.ContainsAny(t, "/ ") {
			return kafkaURL{}, fmt.Errorf("%s %q: topic %q is empty or has '/' or a space; want %s", flag, spec, t, form)
		}
		u.topics = append(u.topics, t)
	}
	u.query = make(map[string]string)
	for kv := range strings.SplitSeq(query, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		if !containsString(keys, k) {
			return kafkaURL{}, fmt.Errorf("%s %q: unknown option %q; the options are: %s", flag, spec, k, strings.Join(keys, ", "))
		}
		u.query[k] = v
	}
	return u, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// openKafka makes the stream of --source kafka://...
func openKafka(c *engine.Context, spec string) (*engine.DStream[string], error) {
	cfg, err := kafkaSourceConfig(spec)
	if err != nil {
		return nil, err
	}
	return kafka.Stream(c, cfg), nil
}

func kafkaSourceConfig(spec string) (kafka.Config, error) {
	u, err := parseKafkaURL("--source", spec, "start", "group")
	if err != nil {
		return kafka.Config{}, err
	}
	cfg := kafka.DefaultConfig()
	cfg.Brokers, cfg.Topics, cfg.Group = u.brokers, u.topics, u.query["group"]
	if cfg.StartOffset, err = kafka.ParseStartOffset(u.query["start"]); err != nil {
		return kafka.Config{}, fmt.Errorf("--source %q: start=%s: use earliest or latest", spec, u.query["start"])
	}
	return cfg, cfg.Validate()
}

// kafkaSinkConfig parses --kafka-out kafka://HOST:PORT/TOPIC for the
// application app.
func kafkaSinkConfig(spec, app string) (*kafka.SinkConfig, error) {
	if spec == "" {
		return nil, nil
	}
	u, err := parseKafkaURL("--kafka-out", spec)
	if err != nil {
		return nil, err
	}
	if len(u.topics) != 1 {
		return nil, fmt.Errorf("--kafka-out %q: give one topic", spec)
	}
	cfg := &kafka.SinkConfig{Brokers: u.brokers, Topic: u.topics[0], App: app, Name: "counts"}
	return cfg, cfg.Validate()
}

// kafkaCountSink writes word counts as records keyed by the word, with
// the count in decimal as the value.
func kafkaCountSink(cfg kafka.SinkConfig) (*kafka.Sink[engine.Pair[string, int64]], error) {
	return kafka.NewSink(cfg, func(p engine.Pair[string, int64]) ([]byte, []byte) {
		return []byte(p.Key), strconv.AppendInt(nil, p.Value, 10)
	})
}
