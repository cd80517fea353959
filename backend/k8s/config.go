package k8s

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Defaults for the zero values of Config.
const (
	DefaultNamespace     = "default"
	DefaultPort          = 8888
	DefaultReadinessPath = "{base_url}api"
	DefaultWorkDir       = "/home/jovyan"
	DefaultVolumeSize    = "10Gi"
	DefaultSecretEnv     = "STUDIO_SERVER_SECRET"
	DefaultStartTimeout  = 5 * time.Minute
	DefaultPollInterval  = 2 * time.Second
	DefaultRunAsUser     = 1000
	DefaultRunAsGroup    = 100
)

// DefaultArgs start Jupyter Server in an image of the Jupyter Docker
// Stacks (for example quay.io/jupyter/base-notebook), listening on all
// interfaces of the pod, under the server's base URL and requiring its
// token. The proxy sends the service's name as Host, which Jupyter takes
// only with remote access allowed.
var DefaultArgs = []string{
	"start-notebook.py",
	"--ServerApp.ip=0.0.0.0",
	"--ServerApp.allow_remote_access=True",
	"--ServerApp.port={port}",
	"--ServerApp.base_url={base_url}",
	"--IdentityProvider.token={secret}",
	"--ServerApp.open_browser=False",
	// stopping is the proxy's call, gated on the start/stop permission
	"--ServerApp.quit_button=False",
}

// Config configures the driver. Only Image is required.
//
// Command, Args, Env values and ReadinessPath are templates: {port},
// {base_url}, {id} and {owner} become the server's values, and {secret}
// becomes a reference $(SecretEnv) that the kubelet fills in from the
// server's Secret when the container starts, so the pod spec never holds
// the token.
type Config struct {
	// Namespace holds the servers' objects. Empty means "default"; a
	// namespace of their own is better (see RequiredRules).
	Namespace string
	// Image is the server's container image. Required.
	Image string
	// ImagePullPolicy is the pod's pull policy; empty means IfNotPresent.
	ImagePullPolicy corev1.PullPolicy
	// ImagePullSecrets name Secrets in Namespace for a private registry.
	ImagePullSecrets []string
	// Command replaces the image's entrypoint; nil keeps it.
	Command []string
	// Args are the container's arguments; nil means DefaultArgs, and an
	// empty non-nil slice means none (the image's own).
	Args []string
	// Env is set in the server's container, after the secret variable.
	Env []corev1.EnvVar
	// SecretEnv is the variable that carries the server's token; empty
	// means DefaultSecretEnv. Set it to JUPYTER_TOKEN and Jupyter reads the
	// token without a command-line option.
	SecretEnv string
	// Port is the port the server listens on; 0 means DefaultPort. The
	// Service exposes the same port.
	Port int32
	// ReadinessPath is the HTTP path the kubelet probes; empty means
	// DefaultReadinessPath, which Jupyter answers without a token.
	ReadinessPath string
	// Resources are the container's requests and limits. The zero value
	// means requests of 100m CPU and 256Mi memory and a 2Gi memory limit.
	Resources corev1.ResourceRequirements
	// WorkDir is where the owner's volume is mounted; empty means
	// DefaultWorkDir, the home of the Jupyter images, so that Jupyter's
	// own files land on the volume and the root file system can stay
	// read-only.
	WorkDir string
	// ExistingClaim, when set, names one PersistentVolumeClaim for all
	// owners: each mounts its own subdirectory. Empty means one claim per
	// owner, created on their first start.
	ExistingClaim string
	// StorageClass is the class of the per-owner claims; empty means the
	// cluster's default class.
	StorageClass string
	// VolumeSize is the size of the per-owner claims; empty means
	// DefaultVolumeSize.
	VolumeSize string
	// RunAsUser, RunAsGroup and FSGroup are the pod's ids; 0 means
	// DefaultRunAsUser, DefaultRunAsGroup and DefaultRunAsGroup. Root is
	// never used.
	RunAsUser  int64
	RunAsGroup int64
	FSGroup    int64
	// WritableRootFS lets the container write its root file system. False
	// (the default) mounts it read-only, with an empty /tmp.
	WritableRootFS bool
	// ServiceAccountName is the pods' service account; empty means the
	// namespace's default. Its token is never mounted.
	ServiceAccountName string
	// NodeSelector constrains which nodes run servers; nil means any.
	NodeSelector map[string]string
	// NamePrefix starts every object's name; empty means
	// DefaultNamePrefix. Lowercase letters, digits and '-', starting with
	// a letter, at most 20 characters.
	NamePrefix string
	// StartTimeout bounds how long a pod may take to become ready; 0
	// means DefaultStartTimeout. A pod that is not ready by then is
	// reported failed with what held it up.
	StartTimeout time.Duration
	// PollInterval is how often Start and Stop look again when a watch
	// does not tell them; 0 means DefaultPollInterval.
	PollInterval time.Duration
	// Log receives the driver's logs; nil means slog.Default().
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,19}$`)

// withDefaults returns cfg with its zero values filled in, or an error
// naming the first field that is wrong.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Image == "" {
		return cfg, errors.New("image is required")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if errs := validation.IsDNS1123Label(cfg.Namespace); len(errs) > 0 {
		return cfg, fmt.Errorf("namespace %q: %s", cfg.Namespace, errs[0])
	}
	if cfg.NamePrefix == "" {
		cfg.NamePrefix = DefaultNamePrefix
	}
	if !prefixRE.MatchString(cfg.NamePrefix) {
		return cfg, fmt.Errorf("name prefix %q: want lowercase letters, digits and '-', "+
			"starting with a letter, at most 20 characters", cfg.NamePrefix)
	}
	if cfg.ImagePullPolicy == "" {
		cfg.ImagePullPolicy = corev1.PullIfNotPresent
	}
	if cfg.Args == nil {
		cfg.Args = DefaultArgs
	}
	if cfg.SecretEnv == "" {
		cfg.SecretEnv = DefaultSecretEnv
	}
	if errs := validation.IsEnvVarName(cfg.SecretEnv); len(errs) > 0 {
		return cfg, fmt.Errorf("secret variable %q: %s", cfg.SecretEnv, errs[0])
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return cfg, fmt.Errorf("port %d is out of range", cfg.Port)
	}
	if cfg.ReadinessPath == "" {
		cfg.ReadinessPath = DefaultReadinessPath
	}
	if cfg.Resources.Requests == nil && cfg.Resources.Limits == nil {
		cfg.Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("100m"),
				corev1.ResourceMemory: resource.MustParse("256Mi"),
			},
			Limits: corev1.ResourceList{
				corev1.ResourceMemory: resource.MustParse("2Gi"),
			},
		}
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = DefaultWorkDir
	}
	if cfg.WorkDir[0] != '/' {
		return cfg, fmt.Errorf("work directory %q is not an absolute path", cfg.WorkDir)
	}
	if cfg.ExistingClaim != "" {
		if errs := validation.IsDNS1123Subdomain(cfg.ExistingClaim); len(errs) > 0 {
			return cfg, fmt.Errorf("existing claim %q: %s", cfg.ExistingClaim, errs[0])
		}
	}
	if cfg.VolumeSize == "" {
		cfg.VolumeSize = DefaultVolumeSize
	}
	if _, err := resource.ParseQuantity(cfg.VolumeSize); err != nil {
		return cfg, fmt.Errorf("volume size %q: %w", cfg.VolumeSize, err)
	}
	if cfg.RunAsUser == 0 {
		cfg.RunAsUser = DefaultRunAsUser
	}
	if cfg.RunAsGroup == 0 {
		cfg.RunAsGroup = DefaultRunAsGroup
	}
	if cfg.FSGroup == 0 {
		cfg.FSGroup = DefaultRunAsGroup
	}
	if cfg.RunAsUser < 0 || cfg.RunAsGroup < 0 || cfg.FSGroup < 0 {
		return cfg, errors.New("user and group ids must not be negative")
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return cfg, nil
}
