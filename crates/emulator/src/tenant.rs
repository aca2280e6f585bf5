//! The emulated tenant's data: assignments and assignment requests in the states the Graph docs name,
//! and the rules Graph applies to reprocess them.

use super::directory::Directory;
use std::collections::HashMap;
use time::{Duration, OffsetDateTime};

#[derive(Debug, Clone)]
pub struct Assignment {
    pub id: String,
    /// v1.0 `accessPackageAssignment.state`: delivering, partiallyDelivered, delivered, expired, deliveryFailed.
    pub state: &'static str,
    pub access_package_id: String,
    pub target_object_id: String,
    pub reprocess_count: u32,
}

#[derive(Debug, Clone)]
pub struct AssignmentRequest {
    pub id: String,
    /// The package requested (`""` when none was set: Graph would then not place it in a catalog).
    pub access_package_id: String,
    /// v1.0 `accessPackageAssignmentRequest.state`.
    pub state: &'static str,
    pub completed: OffsetDateTime,
    pub reprocess_count: u32,
}

#[derive(Debug, Clone)]
pub struct Tenant {
    pub assignments: HashMap<String, Assignment>,
    pub requests: HashMap<String, AssignmentRequest>,
    /// Access package display names by ID (what `$expand=accessPackage` shows).
    pub package_names: HashMap<String, String>,
    /// User display name and UPN by object ID (what `$expand=target` shows).
    pub users: HashMap<String, (String, String)>,
    /// The catalog holding each access package (what `$expand=catalog` shows), by package ID.
    pub package_catalogs: HashMap<String, String>,
    /// Catalog display names by ID.
    pub catalog_names: HashMap<String, String>,
    /// Groups, app-role assignments and what each package grants (drift detection).
    pub directory: Directory,
}

impl Default for Tenant {
    fn default() -> Self {
        Self {
            assignments: HashMap::new(),
            requests: HashMap::new(),
            package_names: HashMap::new(),
            users: HashMap::new(),
            package_catalogs: HashMap::new(),
            catalog_names: HashMap::new(),
            directory: Directory::new(),
        }
    }
}

/// Why Graph refuses to reprocess, as (status, code, message).
pub type Refusal = (u16, &'static str, String);

impl Tenant {
    pub fn add_assignment(&mut self, id: &str, state: &'static str, access_package_id: &str, target_object_id: &str) {
        self.assignments.insert(
            id.to_ascii_lowercase(),
            Assignment {
                id: id.to_ascii_lowercase(),
                state,
                access_package_id: access_package_id.into(),
                target_object_id: target_object_id.into(),
                reprocess_count: 0,
            },
        );
    }

    pub fn add_request(&mut self, id: &str, state: &'static str, completed_days_ago: i64) {
        self.requests.insert(
            id.to_ascii_lowercase(),
            AssignmentRequest {
                id: id.to_ascii_lowercase(),
                access_package_id: String::new(),
                state,
                completed: OffsetDateTime::now_utc() - Duration::days(completed_days_ago),
                reprocess_count: 0,
            },
        );
    }

    /// `accessPackageAssignment: reprocess` — the assignment must exist and be Delivered.
    pub fn reprocess_assignment(&mut self, id: &str) -> Result<(), Refusal> {
        let Some(a) = self.assignments.get_mut(&id.to_ascii_lowercase()) else {
            return Err(not_found(id));
        };
        if a.state != "delivered" {
            return Err((
                400,
                "BadRequest",
                format!(
                    "The access package assignment '{id}' is in state '{}'; only a Delivered assignment can be reprocessed.",
                    a.state
                ),
            ));
        }
        a.reprocess_count += 1;
        let (package, target) = (a.access_package_id.clone(), a.target_object_id.clone());
        self.directory.grant(&package, &target);
        Ok(())
    }

    /// `accessPackageAssignmentRequest: reprocess` — DeliveryFailed or PartiallyDelivered, completed within 14 days.
    pub fn reprocess_request(&mut self, id: &str) -> Result<(), Refusal> {
        let Some(r) = self.requests.get_mut(&id.to_ascii_lowercase()) else {
            return Err(not_found(id));
        };
        if !matches!(r.state, "deliveryFailed" | "partiallyDelivered") {
            return Err((
                400,
                "BadRequest",
                format!(
                    "The request '{id}' is in state '{}'; only DeliveryFailed or PartiallyDelivered requests can be reprocessed.",
                    r.state
                ),
            ));
        }
        if OffsetDateTime::now_utc() - r.completed > Duration::days(14) {
            return Err((
                400,
                "BadRequest",
                format!("The request '{id}' completed more than 14 days ago and can no longer be reprocessed."),
            ));
        }
        r.reprocess_count += 1;
        Ok(())
    }

    pub fn name_package(&mut self, id: &str, name: &str) {
        self.package_names.insert(id.to_ascii_lowercase(), name.to_owned());
    }

    /// Adds a catalog and puts `packages` in it (a package is in one catalog).
    pub fn add_catalog(&mut self, id: &str, name: &str, packages: &[&str]) {
        let id = id.to_ascii_lowercase();
        self.catalog_names.insert(id.clone(), name.to_owned());
        for package in packages {
            self.package_catalogs.insert(package.to_ascii_lowercase(), id.clone());
        }
    }

    /// The access package a request asked for.
    pub fn set_request_package(&mut self, request: &str, package: &str) {
        if let Some(r) = self.requests.get_mut(&request.to_ascii_lowercase()) {
            r.access_package_id = package.to_ascii_lowercase();
        }
    }

    pub fn add_user(&mut self, id: &str, name: &str, upn: &str) {
        self.users
            .insert(id.to_ascii_lowercase(), (name.to_owned(), upn.to_owned()));
    }

    /// Assignments sorted by ID, so paging is stable between requests.
    pub fn sorted_assignments(&self) -> Vec<&Assignment> {
        let mut all: Vec<_> = self.assignments.values().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Total reprocess calls Graph accepted, over all assignments and requests.
    pub fn total_reprocessed(&self) -> u32 {
        self.assignments.values().map(|a| a.reprocess_count).sum::<u32>()
            + self.requests.values().map(|r| r.reprocess_count).sum::<u32>()
    }

    pub fn reprocess_count(&self, id: &str) -> u32 {
        let id = id.to_ascii_lowercase();
        self.assignments
            .get(&id)
            .map(|a| a.reprocess_count)
            .or_else(|| self.requests.get(&id).map(|r| r.reprocess_count))
            .unwrap_or(0)
    }
}

fn not_found(id: &str) -> Refusal {
    (
        404,
        "ResourceNotFound",
        format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
    )
}

/// Fixed IDs of the sample tenant, so the README, the sandbox and the tests name the same things.
pub mod sample {
    /// Client ID of the user-assigned identity attached to the emulated Function App.
    pub const USER_ASSIGNED_CLIENT_ID: &str = "f0e1d2c3-b4a5-4968-8776-5a4b3c2d1e0f";
    /// The emulated tenant and the Function App identity's application ID, as Graph names them in
    /// `x-ms-throttle-scope`.
    pub const EMULATED_TENANT_ID: &str = "0785ef7c-2d7a-4542-b048-95bcab406e0b";
    pub const EMULATED_APP_ID: &str = "9a3d526c-b3c1-4479-ba74-197b5c5751ae";
    pub const PACKAGE_SALES: &str = "9a1d6e2c-3b4f-4c5d-8e6f-7a8b9c0d1e2f";
    /// Catalog "General": Sales, All staff and Visitors.
    pub const CATALOG_GENERAL: &str = "c0a1b2c3-d4e5-4f60-8172-839405a6b7c8";
    /// Catalog "Human resources": Payroll only; in the sandbox's scope, but outside the General caller's.
    pub const CATALOG_HR: &str = "c1b2c3d4-e5f6-4071-8283-94a5b6c7d8e9";
    pub const PACKAGE_VISITORS: &str = "aa11bb22-cc33-4d44-8e55-ff6600770088";
    pub const PACKAGE_PAYROLL: &str = "bb22cc33-dd44-4e55-8f66-007711882299";
    pub const USER_CARLOS: &str = "e7c3d4f5-a6b7-4c8d-9e0f-1a2b3c4d5e6f";
    /// Carlos's delivered Visitors assignment (catalog General).
    pub const VISITORS_CARLOS: &str = "9f1e2d3c-4b5a-4697-8877-665544332211";
    /// Carlos's delivered Payroll assignment (catalog Human resources).
    pub const PAYROLL_CARLOS: &str = "8e2d3c4b-5a69-4786-9766-554433221100";
    pub const USER_ADELE: &str = "c5a1b2d3-e4f5-4a6b-9c7d-8e9f0a1b2c3d";
    pub const USER_BRIAN: &str = "d6b2c3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e";
    /// Delivered: reprocess is accepted.
    pub const DELIVERED_1: &str = "0b6c2f8e-4c1a-4a43-9a55-7f0d1f6a2b10";
    pub const DELIVERED_2: &str = "1c7d3a9f-5d2b-4b54-8b66-8a1e2a7b3c21";
    pub const DELIVERED_3: &str = "2d8e4b0a-6e3c-4c65-9c77-9b2f3b8c4d32";
    /// Expired: Graph answers 400.
    pub const EXPIRED: &str = "3e9f5c1b-7f4d-4d76-8d88-ac304c9d5e43";
    /// Still delivering: Graph answers 400.
    pub const DELIVERING: &str = "4fa06d2c-8a5e-4e87-9e99-bd415dae6f54";
    /// Not in the tenant: Graph answers 404.
    pub const UNKNOWN: &str = "5ab17e3d-9b6f-4f98-8faa-ce526ebf7a65";
    /// Request that failed delivery two days ago: accepted.
    pub const REQUEST_FAILED: &str = "6bc28f4e-ac70-4a09-9abb-df637fc08b76";
    /// Request delivered: 400.
    pub const REQUEST_DELIVERED: &str = "7cd3905f-bd81-4b1a-8bcc-e0748ad19c87";
    /// Request failed 20 days ago: past the 14-day window, 400.
    pub const REQUEST_STALE: &str = "8de4a160-ce92-4c2b-9cdd-f1859be2ad98";

    /// A large package for fan-out: [`BULK_DELIVERED`] delivered assignments (three pages at the
    /// emulator's default page size of 100) plus [`BULK_OTHER`] in other states that the filter excludes.
    pub const PACKAGE_BULK: &str = "e7c1a2b3-4d5e-4f60-8a7b-9c0d1e2f3a4b";
    pub const BULK_DELIVERED: usize = 260;
    pub const BULK_OTHER: usize = 20;

    /// Deterministic ID of the `i`-th assignment of [`PACKAGE_BULK`] (0-based); the first
    /// [`BULK_DELIVERED`] are delivered.
    pub fn bulk_assignment(i: usize) -> String {
        format!("b0b0b0b0-0000-4000-8000-{:012x}", i + 1)
    }

    /// The user targeted by [`bulk_assignment`]`(i)`.
    pub fn bulk_user(i: usize) -> String {
        format!("a0a0a0a0-0000-4000-8000-{:012x}", i + 1)
    }

    /// A package for drift detection: membership of [`GROUP_ENGINEERING`], the app role
    /// [`APP_ROLE_BUILDER`] of [`SP_BUILD_PORTAL`], and a SharePoint site (reported as not checked).
    /// [`USER_DIEGO`] and [`USER_DIANA`] hold delivered assignments and every role.
    pub const PACKAGE_ENGINEERING: &str = "f1d2c3b4-a596-4877-8899-aabbccddeeff";
    pub const GROUP_ENGINEERING: &str = "a1b2c3d4-0001-4abc-8def-000000000001";
    pub const SP_BUILD_PORTAL: &str = "a1b2c3d4-0002-4abc-8def-000000000002";
    pub const APP_ROLE_BUILDER: &str = "a1b2c3d4-0003-4abc-8def-000000000003";
    pub const USER_DIEGO: &str = "e8d4c5f6-a7b8-4c9d-8e0f-1a2b3c4d5e6f";
    pub const USER_DIANA: &str = "f9e5d6a7-b8c9-4d0e-9f1a-2b3c4d5e6f70";
    pub const ENG_DIEGO: &str = "0c1d2e3f-4a5b-4c6d-8e7f-8a9b0c1d2e3f";
    pub const ENG_DIANA: &str = "1d2e3f4a-5b6c-4d7e-8f8a-9b0c1d2e3f4a";

    fn add_engineering(t: &mut super::Tenant) {
        use crate::directory::RoleScope;
        t.name_package(PACKAGE_ENGINEERING, "Engineering");
        let d = &mut t.directory;
        d.add_package_role(
            PACKAGE_ENGINEERING,
            RoleScope::group_member(GROUP_ENGINEERING, "Engineering"),
        );
        d.add_package_role(
            PACKAGE_ENGINEERING,
            RoleScope::app_role(SP_BUILD_PORTAL, APP_ROLE_BUILDER, "Build portal", "Builder"),
        );
        d.add_package_role(
            PACKAGE_ENGINEERING,
            RoleScope::sharepoint_site("https://contoso.sharepoint.com/sites/engineering", "Members"),
        );
        for (user, name, assignment) in [
            (USER_DIEGO, "Diego Siciliani", ENG_DIEGO),
            (USER_DIANA, "Diana Prince", ENG_DIANA),
        ] {
            let upn = format!(
                "{}@contoso.example",
                name.split(' ').next().unwrap_or("").to_ascii_lowercase()
            );
            t.add_user(user, name, &upn);
            t.add_assignment(assignment, "delivered", PACKAGE_ENGINEERING, user);
            t.directory.grant(PACKAGE_ENGINEERING, user);
        }
    }

    pub fn tenant() -> super::Tenant {
        let mut t = super::Tenant::default();
        add_engineering(&mut t);
        t.name_package(PACKAGE_SALES, "Sales");
        t.name_package(PACKAGE_BULK, "All staff");
        t.add_user(USER_ADELE, "Adele Vance", "adelev@contoso.example");
        t.add_user(USER_BRIAN, "Brian Johnson", "brianj@contoso.example");
        t.add_user(USER_CARLOS, "Carlos Slattery", "carloss@contoso.example");
        t.name_package(PACKAGE_VISITORS, "Visitors");
        t.name_package(PACKAGE_PAYROLL, "Payroll");
        t.add_catalog(
            CATALOG_GENERAL,
            "General",
            &[PACKAGE_SALES, PACKAGE_BULK, PACKAGE_VISITORS, PACKAGE_ENGINEERING],
        );
        t.add_catalog(CATALOG_HR, "Human resources", &[PACKAGE_PAYROLL]);
        t.add_assignment(VISITORS_CARLOS, "delivered", PACKAGE_VISITORS, USER_CARLOS);
        t.add_assignment(PAYROLL_CARLOS, "delivered", PACKAGE_PAYROLL, USER_CARLOS);
        const OTHER_STATES: [&str; 4] = ["expired", "delivering", "deliveryFailed", "partiallyDelivered"];
        for i in 0..BULK_DELIVERED + BULK_OTHER {
            let state = if i < BULK_DELIVERED {
                "delivered"
            } else {
                OTHER_STATES[i % OTHER_STATES.len()]
            };
            let user = bulk_user(i);
            t.add_user(
                &user,
                &format!("Staff {}", i + 1),
                &format!("staff{}@contoso.example", i + 1),
            );
            t.add_assignment(&bulk_assignment(i), state, PACKAGE_BULK, &user);
        }
        t.add_assignment(DELIVERED_1, "delivered", PACKAGE_SALES, USER_ADELE);
        t.add_assignment(DELIVERED_2, "delivered", PACKAGE_SALES, USER_BRIAN);
        t.add_assignment(DELIVERED_3, "delivered", PACKAGE_SALES, USER_ADELE);
        t.add_assignment(EXPIRED, "expired", PACKAGE_SALES, USER_BRIAN);
        t.add_assignment(DELIVERING, "delivering", PACKAGE_SALES, USER_ADELE);
        t.add_request(REQUEST_FAILED, "deliveryFailed", 2);
        t.add_request(REQUEST_DELIVERED, "delivered", 1);
        t.add_request(REQUEST_STALE, "deliveryFailed", 20);
        for request in [REQUEST_FAILED, REQUEST_DELIVERED, REQUEST_STALE] {
            t.set_request_package(request, PACKAGE_SALES);
        }
        t
    }
}

/// Deterministic GUIDs for large generated tenants (benchmarks, fan-out and throughput tests).
pub fn generated_id(series: u32, index: usize) -> String {
    format!(
        "{series:08x}-{:04x}-4{:03x}-8000-{index:012x}",
        (index >> 24) & 0xffff,
        (index >> 12) & 0xfff
    )
}

impl Tenant {
    /// Adds `count` delivered assignments with [`generated_id`]`(series, i)` IDs.
    pub fn add_generated_delivered(&mut self, series: u32, count: usize, access_package_id: &str, target: &str) {
        for i in 0..count {
            self.add_assignment(&generated_id(series, i), "delivered", access_package_id, target);
        }
    }
}
