//! Registers the build pipeline's handlers under their Koji method names.

use koji_adjutant_actors::handler::HandlerRegistry;

use super::services::BuildServices;
use super::{build, build_arch, tag_build, waitrepo};

/// The methods [`register_build_handlers`] adds, published to the hub as host data.
pub const BUILD_METHODS: [&str; 5] = ["build", "buildArch", "rebuildSRPM", "tagBuild", "waitrepo"];

pub fn register_build_handlers(registry: &mut HandlerRegistry, services: BuildServices) {
    registry
        .register("build", build::factory(services.clone()))
        .register(
            "buildArch",
            build_arch::build_arch_factory(services.clone()),
        )
        .register(
            "rebuildSRPM",
            build_arch::rebuild_srpm_factory(services.clone()),
        )
        .register("tagBuild", tag_build::factory())
        .register("waitrepo", waitrepo::waitrepo_factory(services));
}
