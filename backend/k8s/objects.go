package k8s

import (
	"strconv"
	"strings"

	"github.com/studio-proxy/studio-proxy/backend"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// secretKey is the key of the token in a server's Secret.
const secretKey = "token"

// The names of the pod's container, port and volumes.
const (
	containerName = "server"
	portName      = "http"
	workVolume    = "work"
	tmpVolume     = "tmp"
)

// server is one server's spec with the names of its objects.
type server struct {
	spec  backend.Spec
	names Names
}

func (d *Driver) server(spec backend.Spec) server {
	return server{spec: spec, names: NamesFor(d.cfg.NamePrefix, spec.ID, spec.Owner)}
}

// meta is the metadata of an object of s named name.
func (d *Driver) meta(s server, name string) metav1.ObjectMeta {
	labels := ServerSelector()
	labels[LabelServer] = s.names.ServerLabel
	labels[LabelOwner] = s.names.OwnerLabel
	return metav1.ObjectMeta{
		Name:      name,
		Namespace: d.cfg.Namespace,
		Labels:    labels,
		Annotations: map[string]string{
			AnnotationServerID: s.spec.ID,
			AnnotationOwner:    s.spec.Owner,
		},
	}
}

func (d *Driver) secretObject(s server) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: d.meta(s, s.names.Object),
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{secretKey: []byte(s.spec.Secret)},
	}
}

// claimObject is the owner's claim. It names the owner but no server,
// since all servers of the owner share it.
//
// TODO: the claim is ReadWriteOnce, so an owner's second server runs only
// on the node of the first while both run; a ReadWriteMany storage class
// (or ExistingClaim on one) lifts that, but not every cluster has one.
func (d *Driver) claimObject(s server) *corev1.PersistentVolumeClaim {
	meta := d.meta(s, s.names.Claim)
	delete(meta.Labels, LabelServer)
	delete(meta.Annotations, AnnotationServerID)
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: meta,
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{
				Requests: corev1.ResourceList{
					corev1.ResourceStorage: resource.MustParse(d.cfg.VolumeSize),
				},
			},
		},
	}
	if d.cfg.StorageClass != "" {
		class := d.cfg.StorageClass
		pvc.Spec.StorageClassName = &class
	}
	return pvc
}

func (d *Driver) serviceObject(s server) *corev1.Service {
	selector := ServerSelector()
	selector[LabelServer] = s.names.ServerLabel
	return &corev1.Service{
		ObjectMeta: d.meta(s, s.names.Object),
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeClusterIP,
			Selector: selector,
			Ports: []corev1.ServicePort{{
				Name:       portName,
				Protocol:   corev1.ProtocolTCP,
				Port:       d.cfg.Port,
				TargetPort: intstr.FromString(portName),
			}},
		},
	}
}

// expand fills the placeholders of a template for s.
func (d *Driver) expand(s server, tmpl string) string {
	return strings.NewReplacer(
		"{port}", strconv.Itoa(int(d.cfg.Port)),
		"{base_url}", s.spec.BaseURL,
		"{secret}", "$("+d.cfg.SecretEnv+")",
		"{id}", s.spec.ID,
		"{owner}", s.spec.Owner,
	).Replace(tmpl)
}

func (d *Driver) expandAll(s server, tmpls []string) []string {
	if tmpls == nil {
		return nil
	}
	out := make([]string, len(tmpls))
	for i, t := range tmpls {
		out[i] = d.expand(s, t)
	}
	return out
}

func (d *Driver) podObject(s server) *corev1.Pod {
	cfg := d.cfg
	yes, no, readOnly := true, false, !cfg.WritableRootFS
	uid, gid, fsGroup := cfg.RunAsUser, cfg.RunAsGroup, cfg.FSGroup
	onRootMismatch := corev1.FSGroupChangeOnRootMismatch

	// the token comes from the server's Secret, by reference
	env := []corev1.EnvVar{{
		Name: cfg.SecretEnv,
		ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: s.names.Object},
			Key:                  secretKey,
		}},
	}}
	for _, e := range cfg.Env {
		e.Value = d.expand(s, e.Value)
		env = append(env, e)
	}

	// the owner's work: their own claim, or their subdirectory of a
	// shared one
	claim, subPath := s.names.Claim, ""
	if cfg.ExistingClaim != "" {
		claim, subPath = cfg.ExistingClaim, s.names.OwnerLabel
	}
	volumes := []corev1.Volume{{
		Name: workVolume,
		VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
		},
	}}
	mounts := []corev1.VolumeMount{{Name: workVolume, MountPath: cfg.WorkDir, SubPath: subPath}}
	if !cfg.WritableRootFS {
		volumes = append(volumes, corev1.Volume{
			Name:         tmpVolume,
			VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}},
		})
		mounts = append(mounts, corev1.VolumeMount{Name: tmpVolume, MountPath: "/tmp"})
	}

	var pullSecrets []corev1.LocalObjectReference
	for _, name := range cfg.ImagePullSecrets {
		pullSecrets = append(pullSecrets, corev1.LocalObjectReference{Name: name})
	}

	container := corev1.Container{
		Name:            containerName,
		Image:           cfg.Image,
		ImagePullPolicy: cfg.ImagePullPolicy,
		Command:         d.expandAll(s, cfg.Command),
		Args:            d.expandAll(s, cfg.Args),
		Ports: []corev1.ContainerPort{{
			Name:          portName,
			ContainerPort: cfg.Port,
			Protocol:      corev1.ProtocolTCP,
		}},
		Env:          env,
		Resources:    cfg.Resources,
		VolumeMounts: mounts,
		ReadinessProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
				Path: d.expand(s, cfg.ReadinessPath),
				Port: intstr.FromString(portName),
			}},
			PeriodSeconds:    2,
			TimeoutSeconds:   2,
			FailureThreshold: 3,
		},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot:             &yes,
			Privileged:               &no,
			AllowPrivilegeEscalation: &no,
			ReadOnlyRootFilesystem:   &readOnly,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
	}

	return &corev1.Pod{
		ObjectMeta: d.meta(s, s.names.Object),
		Spec: corev1.PodSpec{
			Containers:                   []corev1.Container{container},
			Volumes:                      volumes,
			RestartPolicy:                corev1.RestartPolicyAlways,
			ServiceAccountName:           cfg.ServiceAccountName,
			AutomountServiceAccountToken: &no,
			EnableServiceLinks:           &no,
			ImagePullSecrets:             pullSecrets,
			NodeSelector:                 cfg.NodeSelector,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:        &yes,
				RunAsUser:           &uid,
				RunAsGroup:          &gid,
				FSGroup:             &fsGroup,
				FSGroupChangePolicy: &onRootMismatch,
				SeccompProfile: &corev1.SeccompProfile{
					Type: corev1.SeccompProfileTypeRuntimeDefault,
				},
			},
		},
	}
}
