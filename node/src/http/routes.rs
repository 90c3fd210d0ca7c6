//! The route table: every operation of the HTTP listener, one line each, registered with
//! its method. A path answers only the methods listed for it; any other method gets
//! AWS's 405 and runs nothing. Adding an operation is one handler function and one line
//! here.

use actix_web::web::{self, delete, get, patch, post, put};

use super::error::method_not_allowed;
use super::{authorizers as authz, certificates as certs, cluster, data_plane as data, policies, things};
use super::{fleet_index as index, fleet_metrics, logging, provisioning as prov, registration_tasks as tasks, tags};
use super::{jobs, jobs_data};
use super::{thing_groups as groups, thing_types as types, topic_rules as rules};

/// Routes signed for `iot-jobs-data`, whose paths are also the control plane's.
fn jobs_data() -> impl actix_web::guard::Guard {
    actix_web::guard::fn_guard(|ctx| super::call::signed_service(ctx.head()).as_deref() == Some("iot-jobs-data"))
}

/// A path whose unlisted methods are refused with 405.
fn path(pattern: &str) -> actix_web::Resource {
    web::resource(pattern).default_service(web::to(method_not_allowed))
}

/// Registers every operation.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // Operations of the node itself.
    cfg.service(path("/health").route(get().to(super::health)))
        .service(path("/ready").route(get().to(cluster::ready)))
        .service(path("/metrics").route(get().to(super::metrics)))
        .service(path("/cluster/status").route(get().to(cluster::status)))
        .service(path("/cluster/sessions").route(get().to(cluster::sessions)))
        .service(path("/cluster/members").route(post().to(cluster::join)))
        .service(path("/backup").route(get().to(super::backup::backup)))
        .service(path("/stats/history").route(get().to(super::stats_history)))
        .service(path("/console").route(get().to(super::console::index)))
        .service(path("/console/").route(get().to(super::console::index)))
        .service(path("/console/config.json").route(get().to(super::console::config)))
        .service(path("/console/ca.pem").route(get().to(super::console::ca)))
        .service(path("/console/{path:.+}").route(get().to(super::console::file)))
        .service(path("/cluster/members/{id}").route(delete().to(cluster::leave)));
    // iot-data.
    cfg.service(
        path("/things/{thingName}/shadow")
            .route(get().to(data::get_thing_shadow))
            .route(post().to(data::update_thing_shadow))
            .route(delete().to(data::delete_thing_shadow)),
    )
    .service(
        path("/api/things/shadow/ListNamedShadowsForThing/{thingName}")
            .route(get().to(data::list_named_shadows_for_thing)),
    )
    .service(path("/topics/{topic:.*}").route(post().to(data::publish)))
    .service(path("/retainedMessage").route(get().to(data::list_retained_messages)))
    .service(path("/retainedMessage/{topic:.*}").route(get().to(data::get_retained_message)));
    // Things, types and groups.
    cfg.service(path("/things").route(get().to(things::list_things)).route(post().to(prov::register_thing)))
        .service(
            path("/things/{thingName}")
                .route(post().to(things::create_thing))
                .route(get().to(things::describe_thing))
                .route(patch().to(things::update_thing))
                .route(delete().to(things::delete_thing)),
        )
        .service(path("/things/{thingName}/thing-groups").route(get().to(things::list_thing_groups_for_thing)))
        .service(
            path("/things/{thingName}/jobs")
                .route(get().guard(jobs_data()).to(jobs_data::get_pending_job_executions))
                .route(get().to(jobs::list_job_executions_for_thing)),
        )
        .service(
            path("/things/{thingName}/jobs/{jobId}")
                .route(get().guard(jobs_data()).to(jobs_data::describe_job_execution))
                .route(put().guard(jobs_data()).to(jobs_data::start_next_pending_job_execution))
                .route(post().guard(jobs_data()).to(jobs_data::update_job_execution))
                .route(get().to(jobs::describe_job_execution)),
        )
        .service(path("/things/{thingName}/jobs/{jobId}/cancel").route(put().to(jobs::cancel_job_execution)))
        .service(
            path("/things/{thingName}/jobs/{jobId}/executionNumber/{executionNumber}")
                .route(delete().to(jobs::delete_job_execution)),
        )
        .service(path("/endpoint").route(get().to(things::describe_endpoint)))
        .service(path("/thing-types").route(get().to(types::list_thing_types)))
        .service(
            path("/thing-types/{name}")
                .route(post().to(types::create_thing_type))
                .route(get().to(types::describe_thing_type))
                .route(delete().to(types::delete_thing_type)),
        )
        .service(path("/thing-types/{name}/deprecate").route(post().to(types::deprecate_thing_type)))
        .service(path("/thing-groups").route(get().to(groups::list_thing_groups)))
        .service(path("/thing-groups/addThingToThingGroup").route(put().to(groups::add_thing_to_thing_group)))
        .service(path("/thing-groups/removeThingFromThingGroup").route(put().to(groups::remove_thing_from_thing_group)))
        .service(path("/thing-groups/updateThingGroupsForThing").route(put().to(groups::update_thing_groups_for_thing)))
        .service(
            path("/dynamic-thing-groups/{name}")
                .route(post().to(groups::create_dynamic_thing_group))
                .route(patch().to(groups::update_dynamic_thing_group))
                .route(delete().to(groups::delete_thing_group)),
        )
        .service(path("/thing-groups/{name}/things").route(get().to(groups::list_things_in_thing_group)))
        .service(
            path("/thing-groups/{name}")
                .route(post().to(groups::create_thing_group))
                .route(get().to(groups::describe_thing_group))
                .route(patch().to(groups::update_thing_group))
                .route(delete().to(groups::delete_thing_group)),
        );
    // Certificates and principals.
    cfg.service(path("/keys-and-certificate").route(post().to(certs::create_keys_and_certificate)))
        .service(
            path("/certificates")
                .route(post().to(certs::create_certificate_from_csr))
                .route(get().to(certs::list_certificates)),
        )
        .service(
            path("/certificates/{id}")
                .route(get().to(certs::describe_certificate))
                .route(put().to(certs::update_certificate))
                .route(delete().to(certs::delete_certificate)),
        )
        .service(path("/certificates-by-ca/{id}").route(get().to(certs::list_certificates_by_ca)))
        .service(path("/certificate/register").route(post().to(certs::register_certificate)))
        .service(path("/certificate/register-no-ca").route(post().to(certs::register_certificate_without_ca)))
        .service(path("/cacertificate").route(post().to(certs::register_ca_certificate)))
        .service(path("/cacertificates").route(get().to(certs::list_ca_certificates)))
        .service(
            path("/cacertificate/{id}")
                .route(get().to(certs::describe_ca_certificate))
                .route(put().to(certs::update_ca_certificate))
                .route(delete().to(certs::delete_ca_certificate)),
        )
        .service(
            path("/things/{thingName}/principals")
                .route(get().to(certs::list_thing_principals))
                .route(put().to(certs::attach_thing_principal))
                .route(delete().to(certs::detach_thing_principal)),
        )
        .service(path("/principals/things").route(get().to(certs::list_principal_things)));
    // Policies.
    cfg.service(path("/policies").route(get().to(policies::list_policies)))
        .service(
            path("/policies/{name}")
                .route(post().to(policies::create_policy))
                .route(get().to(policies::get_policy))
                .route(delete().to(policies::delete_policy)),
        )
        .service(
            path("/policies/{name}/version")
                .route(post().to(policies::create_policy_version))
                .route(get().to(policies::list_policy_versions)),
        )
        .service(
            path("/policies/{name}/version/{version}")
                .route(get().to(policies::get_policy_version))
                .route(patch().to(policies::set_default_policy_version))
                .route(delete().to(policies::delete_policy_version)),
        )
        .service(
            path("/target-policies/{name}")
                .route(put().to(policies::attach_policy))
                .route(post().to(policies::detach_policy)),
        )
        .service(path("/attached-policies/{target:.*}").route(post().to(policies::list_attached_policies)))
        .service(path("/policy-targets/{name}").route(post().to(policies::list_targets_for_policy)))
        .service(path("/effective-policies").route(post().to(policies::get_effective_policies)))
        .service(path("/test-authorization").route(post().to(policies::test_authorization)));
    // Custom authorizers.
    cfg.service(path("/authorizers/").route(get().to(authz::list_authorizers)))
        .service(path("/authorizers").route(get().to(authz::list_authorizers)))
        .service(
            path("/authorizer/{name}")
                .route(post().to(authz::create_authorizer))
                .route(get().to(authz::describe_authorizer))
                .route(put().to(authz::update_authorizer))
                .route(delete().to(authz::delete_authorizer)),
        )
        .service(path("/authorizer/{name}/test").route(post().to(authz::test_invoke_authorizer)))
        .service(
            path("/default-authorizer")
                .route(post().to(authz::set_default_authorizer))
                .route(get().to(authz::describe_default_authorizer)),
        );
    // Topic rules.
    cfg.service(path("/rules").route(get().to(rules::list_topic_rules)))
        .service(
            path("/rules/{ruleName}")
                .route(post().to(rules::create_topic_rule))
                .route(get().to(rules::get_topic_rule))
                .route(patch().to(rules::replace_topic_rule))
                .route(delete().to(rules::delete_topic_rule)),
        )
        .service(path("/rules/{ruleName}/enable").route(post().to(rules::enable_topic_rule)))
        .service(path("/rules/{ruleName}/disable").route(post().to(rules::disable_topic_rule)));
    // Jobs.
    cfg.service(path("/jobs").route(get().to(jobs::list_jobs)))
        .service(
            path("/jobs/{jobId}")
                .route(put().to(jobs::create_job))
                .route(get().to(jobs::describe_job))
                .route(patch().to(jobs::update_job))
                .route(delete().to(jobs::delete_job)),
        )
        .service(path("/jobs/{jobId}/cancel").route(put().to(jobs::cancel_job)))
        .service(path("/jobs/{jobId}/job-document").route(get().to(jobs::get_job_document)))
        .service(path("/jobs/{jobId}/things").route(get().to(jobs::list_job_executions_for_job)))
        .service(path("/jobs/{jobId}/targets").route(post().to(jobs::associate_targets_with_job)))
        .service(path("/job-templates").route(get().to(jobs::list_job_templates)))
        .service(
            path("/job-templates/{jobTemplateId}")
                .route(put().to(jobs::create_job_template))
                .route(get().to(jobs::describe_job_template))
                .route(delete().to(jobs::delete_job_template)),
        )
        .service(
            path("/event-configurations")
                .route(get().to(jobs::describe_event_configurations))
                .route(patch().to(jobs::update_event_configurations)),
        );
    // Provisioning: templates, claims, RegisterThing, registration code, bulk registration.
    cfg.service(
        path("/provisioning-templates").route(post().to(prov::create_template)).route(get().to(prov::list_templates)),
    )
    .service(
        path("/provisioning-templates/{templateName}")
            .route(get().to(prov::describe_template))
            .route(patch().to(prov::update_template))
            .route(delete().to(prov::delete_template)),
    )
    .service(
        path("/provisioning-templates/{templateName}/versions")
            .route(post().to(prov::create_version))
            .route(get().to(prov::list_versions)),
    )
    .service(
        path("/provisioning-templates/{templateName}/versions/{versionId}")
            .route(get().to(prov::describe_version))
            .route(delete().to(prov::delete_version)),
    )
    .service(path("/provisioning-templates/{templateName}/provisioning-claim").route(post().to(prov::create_claim)))
    .service(
        path("/registrationcode")
            .route(get().to(prov::get_registration_code))
            .route(delete().to(prov::delete_registration_code)),
    )
    .service(path("/thing-registration-tasks").route(post().to(tasks::start_task)).route(get().to(tasks::list_tasks)))
    .service(path("/thing-registration-tasks/{taskId}").route(get().to(tasks::describe_task)))
    .service(path("/thing-registration-tasks/{taskId}/cancel").route(put().to(tasks::stop_task)))
    .service(path("/thing-registration-tasks/{taskId}/reports").route(get().to(tasks::list_reports)))
    .service(path("/thing-registration-reports/{taskId}/{report}").route(get().to(tasks::report_file)));
    // Fleet indexing.
    cfg.service(
        path("/indexing/config")
            .route(post().to(index::update_configuration))
            .route(get().to(index::get_configuration)),
    )
    .service(path("/indices").route(get().to(index::list_indices)))
    .service(path("/indices/search").route(post().to(index::search)))
    .service(path("/indices/statistics").route(post().to(index::statistics)))
    .service(path("/indices/cardinality").route(post().to(index::cardinality)))
    .service(path("/indices/percentiles").route(post().to(index::percentiles)))
    .service(path("/indices/buckets").route(post().to(index::buckets)))
    .service(path("/indices/{indexName}").route(get().to(index::describe_index)));
    // Fleet metrics.
    cfg.service(path("/fleet-metrics").route(get().to(fleet_metrics::list))).service(
        path("/fleet-metric/{metricName}")
            .route(put().to(fleet_metrics::create))
            .route(get().to(fleet_metrics::describe))
            .route(patch().to(fleet_metrics::update))
            .route(delete().to(fleet_metrics::delete)),
    );
    // AWS IoT v2 logging.
    cfg.service(path("/v2LoggingOptions").route(post().to(logging::set_options)).route(get().to(logging::get_options)))
        .service(
            path("/v2LoggingLevel")
                .route(post().to(logging::set_level))
                .route(get().to(logging::list_levels))
                .route(delete().to(logging::delete_level)),
        );
    // Tags.
    cfg.service(path("/tags").route(post().to(tags::tag_resource)).route(get().to(tags::list_tags)))
        .service(path("/untag").route(post().to(tags::untag_resource)));
}
