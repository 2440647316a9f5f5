package probe

import (
	"context"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const metricsGroupVersion = "metrics.k8s.io/v1beta1"

// Resources reports the requests and limits of the target's containers and,
// when metrics.k8s.io is served and answers for the pods, the share of pods
// whose usage is near their limits. Without usage it says available=false
// and why; it never guesses.
type Resources struct {
	Client kubernetes.Interface
}

// Name is "resources".
func (Resources) Name() string { return "resources" }

// Needs: get deployments, list pods, list pods.metrics.k8s.io.
func (Resources) Needs() []Permission {
	return []Permission{permDeployGet, permPodsList, permPodMetrics}
}

// ContainerResources are one container's requests and limits; empty string
// and 0 mean not set.
type ContainerResources struct {
	Name               string `cel:"name" json:"name"`
	CPURequest         string `cel:"cpuRequest" json:"cpuRequest"`
	CPULimit           string `cel:"cpuLimit" json:"cpuLimit"`
	MemoryRequest      string `cel:"memoryRequest" json:"memoryRequest"`
	MemoryLimit        string `cel:"memoryLimit" json:"memoryLimit"`
	CPURequestMillis   int64  `cel:"cpuRequestMillis" json:"cpuRequestMillis"`
	CPULimitMillis     int64  `cel:"cpuLimitMillis" json:"cpuLimitMillis"`
	MemoryRequestBytes int64  `cel:"memoryRequestBytes" json:"memoryRequestBytes"`
	MemoryLimitBytes   int64  `cel:"memoryLimitBytes" json:"memoryLimitBytes"`
}

// PodUsage is one pod's usage against its limits (only when available).
type PodUsage struct {
	Name               string  `cel:"name" json:"name"`
	CPUMillis          int64   `cel:"cpuMillis" json:"cpuMillis"`
	MemoryBytes        int64   `cel:"memoryBytes" json:"memoryBytes"`
	CPULimitPercent    float64 `cel:"cpuLimitPercent" json:"cpuLimitPercent"`       // 0 when no CPU limit
	MemoryLimitPercent float64 `cel:"memoryLimitPercent" json:"memoryLimitPercent"` // 0 when no memory limit
}

// ResourcesEvidence is the resources probe's evidence.
type ResourcesEvidence struct {
	Containers             []ContainerResources `cel:"containers" json:"containers"`
	Available              bool                 `cel:"available" json:"available"`
	Reason                 string               `cel:"reason" json:"reason,omitempty"` // why usage is unavailable
	CPUNearLimitPercent    int64                `cel:"cpuNearLimitPercent" json:"cpuNearLimitPercent"`
	MemoryNearLimitPercent int64                `cel:"memoryNearLimitPercent" json:"memoryNearLimitPercent"`
	Pods                   []PodUsage           `cel:"pods" json:"pods"`
}

// Run reads the pod template and, if served, metrics.k8s.io. Parameter
// nearLimitPercent (int, 1–100, default 90) is the usage/limit ratio that
// counts as near the limit.
func (p Resources) Run(ctx context.Context, t Target, params Params) (Evidence, error) {
	near, err := params.Int("nearLimitPercent", 90)
	if err != nil {
		return nil, err
	}
	if err := bounded("nearLimitPercent", near, 1, 100); err != nil {
		return nil, err
	}
	d, pods, err := targetPods(ctx, p.Client, t)
	if err != nil {
		return nil, err
	}
	ev := ResourcesEvidence{Containers: templateResources(d), Pods: []PodUsage{}}
	usage, reason, err := p.podMetrics(ctx, t.Namespace, d)
	if err != nil {
		return nil, err
	}
	if usage == nil {
		ev.Reason = reason
		return ev, nil
	}
	ev.Available, ev.Pods, ev.CPUNearLimitPercent, ev.MemoryNearLimitPercent, ev.Reason = nearLimits(pods, usage, float64(near))
	return ev, nil
}

func templateResources(d *appsv1.Deployment) []ContainerResources {
	out := []ContainerResources{}
	for _, c := range d.Spec.Template.Spec.Containers {
		cr := ContainerResources{Name: c.Name}
		if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
			cr.CPURequest, cr.CPURequestMillis = q.String(), q.MilliValue()
		}
		if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
			cr.CPULimit, cr.CPULimitMillis = q.String(), q.MilliValue()
		}
		if q, ok := c.Resources.Requests[corev1.ResourceMemory]; ok {
			cr.MemoryRequest, cr.MemoryRequestBytes = q.String(), q.Value()
		}
		if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			cr.MemoryLimit, cr.MemoryLimitBytes = q.String(), q.Value()
		}
		out = append(out, cr)
	}
	return out
}

// podMetricsList is the part of metrics.k8s.io/v1beta1 PodMetricsList read here.
type podMetricsList struct {
	Items []struct {
		Metadata   metav1.ObjectMeta `json:"metadata"`
		Containers []struct {
			Name  string              `json:"name"`
			Usage corev1.ResourceList `json:"usage"`
		} `json:"containers"`
	} `json:"items"`
}

// containerUsage is pod name → container name → usage.
type containerUsage map[string]map[string]corev1.ResourceList

// podMetrics returns usage, or nil and the reason it is unavailable. Only a
// failure to talk to the API server at all is an error.
func (p Resources) podMetrics(ctx context.Context, ns string, d *appsv1.Deployment) (containerUsage, string, error) {
	if _, err := p.Client.Discovery().ServerResourcesForGroupVersion(metricsGroupVersion); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "metrics.k8s.io is not served by this cluster (no metrics-server): usage unknown", nil
		}
		return nil, fmt.Sprintf("metrics.k8s.io discovery failed: %v", err), nil
	}
	sel, err := selectorOf(d)
	if err != nil {
		return nil, "", err
	}
	raw, err := p.Client.Discovery().RESTClient().Get().
		AbsPath("/apis/metrics.k8s.io/v1beta1/namespaces", ns, "pods").
		Param("labelSelector", sel).DoRaw(ctx)
	if err != nil {
		return nil, fmt.Sprintf("metrics.k8s.io did not answer for the pods: %v", err), nil
	}
	var l podMetricsList
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Sprintf("metrics.k8s.io answer not understood: %v", err), nil
	}
	u := containerUsage{}
	for _, it := range l.Items {
		m := map[string]corev1.ResourceList{}
		for _, c := range it.Containers {
			m[c.Name] = c.Usage
		}
		u[it.Metadata.Name] = m
	}
	return u, "", nil
}

// nearLimits computes per-pod usage against limits and the percent of pods
// at or above near% of their CPU / memory limit. A pod's usage and limit
// are summed over the containers that have that limit. Pods with no usage
// reported are left out; if none has usage, usage is unavailable.
func nearLimits(pods []corev1.Pod, usage containerUsage, near float64) (ok bool, out []PodUsage, cpuPct, memPct int64, reason string) {
	out = []PodUsage{}
	var cpuNear, memNear int64
	for i := range pods {
		pod := &pods[i]
		cu, found := usage[pod.Name]
		if !found {
			continue
		}
		pu := PodUsage{Name: pod.Name}
		var cpuUse, cpuLim, memUse, memLim int64
		for _, c := range pod.Spec.Containers {
			use := cu[c.Name]
			cpu, mem := qty(use, corev1.ResourceCPU).MilliValue(), qty(use, corev1.ResourceMemory).Value()
			pu.CPUMillis += cpu
			pu.MemoryBytes += mem
			if l, ok := c.Resources.Limits[corev1.ResourceCPU]; ok && !l.IsZero() {
				cpuUse += cpu
				cpuLim += l.MilliValue()
			}
			if l, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && !l.IsZero() {
				memUse += mem
				memLim += l.Value()
			}
		}
		if cpuLim > 0 {
			pu.CPULimitPercent = 100 * float64(cpuUse) / float64(cpuLim)
			if pu.CPULimitPercent >= near {
				cpuNear++
			}
		}
		if memLim > 0 {
			pu.MemoryLimitPercent = 100 * float64(memUse) / float64(memLim)
			if pu.MemoryLimitPercent >= near {
				memNear++
			}
		}
		out = append(out, pu)
	}
	if len(out) == 0 {
		return false, out, 0, 0, "metrics.k8s.io returned no usage for the target's pods"
	}
	n := int64(len(out))
	return true, out, cpuNear * 100 / n, memNear * 100 / n, ""
}

func qty(l corev1.ResourceList, name corev1.ResourceName) *resource.Quantity {
	q := l[name]
	return &q
}
