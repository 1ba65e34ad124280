package engine

import (
	"fmt"
	"math"
	"time"
)

// Spark's defaults for the PID rate estimator
// (spark.streaming.backpressure.pid.*).
const (
	defaultPIDProportional = 1.0
	defaultPIDIntegral     = 0.2
	defaultPIDDerivative   = 0.0
	defaultPIDMinRate      = 100.0 // records per second
)

// pidRateEstimator is Spark Streaming's PIDRateEstimator: after every
// batch it estimates how many records per second the receivers should
// accept so that a batch is processed within its interval. Backpressure
// feeds the estimate to the receivers' rate limiters.
//
// The error is the difference between the rate it asked for last time
// and the rate the last batch was processed at (records / processing
// delay). The integral term is not a running sum: scheduling delay
// stands for the errors accumulated so far, since a delay of s means
// s × processingRate records overflowed earlier batches.
//
// It is a step function fed the batch's statistics; it reads no clock.
// It is not safe for concurrent use: the caller serialises calls (Spark
// synchronises inside compute).
type pidRateEstimator struct {
	batchIntervalMillis float64
	proportional        float64
	integral            float64
	derivative          float64
	minRate             float64

	firstRun    bool      // no call has been accepted yet
	latestTime  time.Time // of the last accepted call; unset while firstRun
	latestRate  float64   // records per second
	latestError float64   // records per second
}

// newPIDRateEstimator checks its arguments as Spark does: the batch
// interval must be positive, the gains non-negative, the minimum rate
// positive. NaN is rejected everywhere, as Spark's require(x >= 0) does.
func newPIDRateEstimator(batchInterval time.Duration, proportional, integral, derivative, minRate float64) (*pidRateEstimator, error) {
	switch {
	case batchInterval <= 0:
		return nil, fmt.Errorf("engine: pid rate estimator: batch interval %v must be greater than zero", batchInterval)
	case !(proportional >= 0):
		return nil, fmt.Errorf("engine: pid rate estimator: proportional gain %v must be >= 0 (default %v)", proportional, defaultPIDProportional)
	case !(integral >= 0):
		return nil, fmt.Errorf("engine: pid rate estimator: integral gain %v must be >= 0 (default %v)", integral, defaultPIDIntegral)
	case !(derivative >= 0):
		return nil, fmt.Errorf("engine: pid rate estimator: derivative gain %v must be >= 0 (default %v)", derivative, defaultPIDDerivative)
	case !(minRate > 0):
		return nil, fmt.Errorf("engine: pid rate estimator: minimum rate %v must be > 0 records per second (default %v)", minRate, defaultPIDMinRate)
	}
	return &pidRateEstimator{
		batchIntervalMillis: millis(batchInterval),
		proportional:        proportional,
		integral:            integral,
		derivative:          derivative,
		minRate:             minRate,
		firstRun:            true,
		latestRate:          -1,
		latestError:         -1,
	}, nil
}

// compute takes the statistics of a completed batch and returns the new
// rate in records per second. ok is false, and nothing is estimated, on
// the first call (which only records the processing rate), when the batch
// had no records or no processing delay, and when batchCompleteTime is
// not after the previous call's; the last three leave the state alone.
func (e *pidRateEstimator) compute(batchCompleteTime time.Time, numElements int64, processingDelay, schedulingDelay time.Duration) (rate float64, ok bool) {
	if !e.firstRun && !batchCompleteTime.After(e.latestTime) || numElements <= 0 || processingDelay <= 0 {
		return 0, false
	}
	// Arithmetic in milliseconds, in Spark's order, so that whole-millisecond
	// inputs give bit-for-bit Spark's results; finer durations keep their
	// fraction rather than being truncated. On the first call the terms
	// that depend on the previous call are meaningless, as in Spark, and
	// discarded.
	delaySinceUpdate := millis(batchCompleteTime.Sub(e.latestTime)) / 1000 // seconds
	processingRate := float64(numElements) / millis(processingDelay) * 1000
	rateError := e.latestRate - processingRate
	historicalError := millis(schedulingDelay) * processingRate / e.batchIntervalMillis
	dError := (rateError - e.latestError) / delaySinceUpdate
	newRate := math.Max(e.latestRate-e.proportional*rateError-e.integral*historicalError-e.derivative*dError, e.minRate)

	e.latestTime = batchCompleteTime
	if e.firstRun {
		e.latestRate = processingRate
		e.latestError = 0
		e.firstRun = false
		return 0, false
	}
	e.latestRate = newRate
	e.latestError = rateError
	return newRate, true
}

// millis is d in milliseconds, with its fraction.
func millis(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}
