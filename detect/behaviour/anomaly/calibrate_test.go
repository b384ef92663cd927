package anomaly

import (
	"math"
	"testing"
)

func TestCalibrate(t *testing.T) {
	scores := []float64{0.5, 0.1, 0.9, 0.3, math.NaN(), 0.7, 0.2, 0.4, 0.6, 0.8, 0.35}
	tests := []struct {
		scores   []float64
		quantile float64
		want     float64
	}{
		{nil, 0.99, 1},
		{[]float64{math.NaN()}, 0.99, 1},
		{scores, 0.9, 0.8}, // 10 usable scores: 9 of them ≤ 0.8
		{scores, 0.91, 0.9},
		{scores, 0.5, 0.4},
		{scores, 1, 0.9},
		{scores, 2, 0.9},
		{scores, math.NaN(), 0.9},
		{scores, 0, 0.1},
		{scores, -1, 0.1},
	}
	for _, tt := range tests {
		if got := Calibrate(tt.scores, tt.quantile); got != tt.want {
			t.Errorf("Calibrate(%v, %v) = %v, want %v", tt.scores, tt.quantile, got, tt.want)
		}
	}
	if scores[0] != 0.5 {
		t.Error("Calibrate sorted its input")
	}
	if Anomalous(0.8, 0.8) || !Anomalous(0.81, 0.8) {
		t.Error("Anomalous must be strict")
	}
}
