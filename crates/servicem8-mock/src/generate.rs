//! Realistic records made from a seeded random generator: the same seed and sizes always give the same account.
//!
//! Dates fall in 2024, so anything the account changes later (stamped with the current time) sorts after them.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::config::MockConfig;
use super::records::{format_date, ObjectKind, Record, Records, NO_DATE};

const FIRST_NAMES: [&str; 12] = [
    "Olivia",
    "Jack",
    "Charlotte",
    "Noah",
    "Amelia",
    "William",
    "Isla",
    "Oliver",
    "Mia",
    "Leo",
    "Ava",
    "Henry",
];
const LAST_NAMES: [&str; 12] = [
    "Smith", "Nguyen", "Williams", "Brown", "Wilson", "Taylor", "Anderson", "Walker", "Harris", "Lee", "Martin",
    "Kelly",
];
const TRADES: [&str; 8] = [
    "Plumbing",
    "Electrical",
    "Property Group",
    "Cafe",
    "Dental",
    "Strata Management",
    "Motors",
    "Bakery",
];
const STREETS: [&str; 8] = [
    "Brunton Avenue",
    "Collins Street",
    "Chapel Street",
    "Smith Street",
    "Lygon Street",
    "Glenferrie Road",
    "Sydney Road",
    "High Street",
];
const SUBURBS: [(&str, &str, &str); 6] = [
    ("Richmond", "VIC", "3121"),
    ("Fitzroy", "VIC", "3065"),
    ("Brunswick", "VIC", "3056"),
    ("Surry Hills", "NSW", "2010"),
    ("Newtown", "NSW", "2042"),
    ("Fortitude Valley", "QLD", "4006"),
];
pub(crate) const JOB_DESCRIPTIONS: [&str; 10] = [
    "Install new basin mixer in ensuite",
    "Replace hot water system (electric, 250L)",
    "Blocked kitchen drain, camera inspection",
    "Test and tag all appliances",
    "Install two new power points in office",
    "Leaking roof over back verandah",
    "Annual backflow prevention test",
    "Replace switchboard, upgrade to RCDs",
    "Service split system air conditioners",
    "Repair burst pipe under driveway",
];
const JOB_TITLES: [&str; 5] = ["Plumber", "Electrician", "Apprentice", "Office Manager", "Estimator"];
const FILE_TYPES: [(&str, &str); 4] = [
    (".jpg", "Photo"),
    (".jpg", "Photo"),
    (".pdf", "Quote"),
    (".png", "Site plan"),
];
pub const JOB_STATUSES: [&str; 4] = ["Quote", "Work Order", "Unsuccessful", "Completed"];

/// A record generator; `seed` fixes everything it makes.
pub struct Generator {
    rng: StdRng,
    next_job_number: u64,
}

impl Generator {
    pub fn new(seed: u64) -> Self {
        Generator {
            rng: StdRng::seed_from_u64(seed),
            next_job_number: 1001,
        }
    }

    /// The account's records at start, sized by `config`.
    pub fn account(&mut self, config: &MockConfig) -> Records {
        let mut records = Records::default();
        let staff: Vec<Record> = (0..config.staff.max(1)).map(|_| self.staff()).collect();
        let staff_uuids: Vec<String> = staff.iter().map(uuid_of).collect();
        for member in staff {
            records.put(ObjectKind::Staff, member);
        }
        for _ in 0..config.companies {
            let company = self.company();
            for _ in 0..config.jobs_per_company {
                let job = self.job(&company);
                for _ in 0..config.activities_per_job {
                    let staff_uuid = staff_uuids.choose(&mut self.rng).expect("at least one staff member");
                    records.put(ObjectKind::JobActivity, self.job_activity(&job, staff_uuid));
                }
                for _ in 0..config.attachments_per_job {
                    records.put(ObjectKind::Attachment, self.attachment(&job));
                }
                records.put(ObjectKind::Job, job);
            }
            records.put(ObjectKind::Company, company);
        }
        records
    }

    /// The generator's random source, for callers that pick among its records.
    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    fn uuid(&mut self) -> String {
        uuid::Builder::from_random_bytes(self.rng.random())
            .into_uuid()
            .to_string()
    }

    /// A moment in 2024.
    fn date_in_2024(&mut self) -> OffsetDateTime {
        let start = time::macros::datetime!(2024-01-01 00:00:00 UTC);
        start + time::Duration::seconds(self.rng.random_range(0..365 * 24 * 3600))
    }

    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options.choose(&mut self.rng).expect("non-empty options")
    }

    pub fn staff(&mut self) -> Record {
        let (first, last) = (self.pick(&FIRST_NAMES), self.pick(&LAST_NAMES));
        let digits: [u16; 3] = [
            self.rng.random_range(0..100),
            self.rng.random_range(0..1000),
            self.rng.random_range(0..1000),
        ];
        let mobile = format!("04{:02} {:03} {:03}", digits[0], digits[1], digits[2]);
        let edit_date = format_date(self.date_in_2024());
        let job_title = self.pick(&JOB_TITLES);
        object(json!({
            "uuid": self.uuid(),
            "active": 1,
            "edit_date": edit_date,
            "first": first,
            "last": last,
            "email": format!("{}.{}@example.com", first.to_lowercase(), last.to_lowercase()),
            "mobile": mobile,
            "job_title": job_title,
        }))
    }

    pub fn company(&mut self) -> Record {
        let is_individual = self.rng.random_bool(0.3);
        let last = self.pick(&LAST_NAMES);
        let name = if is_individual {
            format!("{} {last}", self.pick(&FIRST_NAMES))
        } else {
            format!("{last} {}", self.pick(&TRADES))
        };
        let (street, (city, state, postcode)) = (self.pick(&STREETS), *SUBURBS.choose(&mut self.rng).expect("suburbs"));
        let street = format!("{} {street}", self.rng.random_range(1..400));
        let edit_date = format_date(self.date_in_2024());
        object(json!({
            "uuid": self.uuid(),
            "active": 1,
            "edit_date": edit_date,
            "name": name,
            "is_individual": u8::from(is_individual),
            "parent_company_uuid": "",
            "address_street": street,
            "address_city": city,
            "address_state": state,
            "address_postcode": postcode,
            "address_country": "Australia",
            "billing_address": format!("{street}, {city} {state} {postcode}"),
        }))
    }

    pub fn job(&mut self, company: &Record) -> Record {
        let status = *[
            JOB_STATUSES[0],
            JOB_STATUSES[1],
            JOB_STATUSES[1],
            JOB_STATUSES[2],
            JOB_STATUSES[3],
        ]
        .choose(&mut self.rng)
        .expect("statuses");
        let quoted = self.date_in_2024();
        let step = |rng: &mut StdRng, from: OffsetDateTime| from + time::Duration::hours(rng.random_range(1..24 * 14));
        let work_order = step(&mut self.rng, quoted);
        let finished = step(&mut self.rng, work_order);
        let date_if = |reached: bool, at: OffsetDateTime| {
            if reached {
                format_date(at)
            } else {
                NO_DATE.to_owned()
            }
        };
        let amount = if status == "Quote" {
            0.0
        } else {
            self.rng.random_range(8_000..500_000) as f64 / 100.0
        };
        let invoiced = status == "Completed" && self.rng.random_bool(0.7);
        let paid = invoiced && self.rng.random_bool(0.6);
        let job_number = self.next_job_number;
        self.next_job_number += 1;
        let description = self.pick(&JOB_DESCRIPTIONS);
        object(json!({
            "uuid": self.uuid(),
            "active": 1,
            "edit_date": format_date(if status == "Quote" || status == "Work Order" { work_order } else { finished }),
            "status": status,
            "company_uuid": company["uuid"],
            "generated_job_id": job_number.to_string(),
            "date": format_date(quoted.replace_time(time::Time::MIDNIGHT)),
            "job_address": company["billing_address"],
            "billing_address": company["billing_address"],
            "job_description": description,
            "work_done_description": "",
            "quote_date": format_date(quoted),
            "work_order_date": date_if(status != "Quote", work_order),
            "completion_date": date_if(status == "Completed", finished),
            "unsuccessful_date": date_if(status == "Unsuccessful", finished),
            "total_invoice_amount": format!("{amount:.4}"),
            "invoice_sent": invoiced,
            "payment_received": u8::from(paid),
            "queue_uuid": "",
            "category_uuid": "",
            "badges": "[]",
            "purchase_order_number": if status != "Quote" { format!("PO{job_number}") } else { String::new() },
        }))
    }

    pub fn job_activity(&mut self, job: &Record, staff_uuid: &str) -> Record {
        let start = self.date_in_2024();
        let end = start + time::Duration::minutes(self.rng.random_range(1..8) * 30);
        let recorded = self.rng.random_bool(0.5);
        object(json!({
            "uuid": self.uuid(),
            "active": 1,
            "edit_date": format_date(end),
            "job_uuid": job["uuid"],
            "staff_uuid": staff_uuid,
            "start_date": format_date(start),
            "end_date": format_date(end),
            "activity_was_scheduled": 1,
            "activity_was_recorded": u8::from(recorded),
        }))
    }

    pub fn attachment(&mut self, job: &Record) -> Record {
        let (file_type, label) = *FILE_TYPES.choose(&mut self.rng).expect("file types");
        let taken = format_date(self.date_in_2024());
        let number = self.rng.random_range(1..1000);
        object(json!({
            "uuid": self.uuid(),
            "active": 1,
            "edit_date": taken,
            "related_object": "job",
            "related_object_uuid": job["uuid"],
            "attachment_name": format!("{label} {number}{file_type}"),
            "file_type": file_type,
            "attachment_source": if file_type == ".pdf" { "Desktop" } else { "Mobile" },
            "timestamp": taken,
        }))
    }
}

fn object(value: Value) -> Record {
    match value {
        Value::Object(record) => record,
        _ => unreachable!("records are built from object literals"),
    }
}

pub fn uuid_of(record: &Record) -> String {
    record
        .get("uuid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// A fresh random uuid, for records added at run time by tests.
pub fn random_uuid() -> String {
    Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> MockConfig {
        MockConfig {
            companies: 4,
            jobs_per_company: 3,
            activities_per_job: 2,
            attachments_per_job: 1,
            staff: 3,
            ..Default::default()
        }
    }

    #[test]
    fn the_same_seed_generates_the_same_account() {
        let first = Generator::new(42).account(&small());
        assert_eq!(first, Generator::new(42).account(&small()));
        assert_ne!(first, Generator::new(43).account(&small()));
    }

    #[test]
    fn the_account_has_the_configured_sizes() {
        let records = Generator::new(1).account(&small());
        assert_eq!(records.len(ObjectKind::Company), 4);
        assert_eq!(records.len(ObjectKind::Job), 12);
        assert_eq!(records.len(ObjectKind::JobActivity), 24);
        assert_eq!(records.len(ObjectKind::Attachment), 12);
        assert_eq!(records.len(ObjectKind::Staff), 3);
    }

    #[test]
    fn records_carry_the_fields_of_the_real_api() {
        let records = Generator::new(7).account(&small());
        for kind in ObjectKind::ALL {
            for uuid in records.uuids(kind) {
                let record = records.get(kind, uuid).unwrap();
                assert_eq!(record["active"], 1);
                assert!(Uuid::parse_str(uuid).is_ok());
                assert_eq!(record["edit_date"].as_str().unwrap().len(), "2024-01-01 00:00:00".len());
            }
        }
        for uuid in records.uuids(ObjectKind::Job) {
            let job = records.get(ObjectKind::Job, uuid).unwrap();
            assert!(JOB_STATUSES.contains(&job["status"].as_str().unwrap()));
            assert!(records
                .get(ObjectKind::Company, job["company_uuid"].as_str().unwrap())
                .is_some());
            let completed = job["status"] == "Completed";
            assert_eq!(job["completion_date"] != NO_DATE, completed);
        }
        for uuid in records.uuids(ObjectKind::JobActivity) {
            let activity = records.get(ObjectKind::JobActivity, uuid).unwrap();
            assert!(records
                .get(ObjectKind::Job, activity["job_uuid"].as_str().unwrap())
                .is_some());
            assert!(records
                .get(ObjectKind::Staff, activity["staff_uuid"].as_str().unwrap())
                .is_some());
        }
        for uuid in records.uuids(ObjectKind::Attachment) {
            let attachment = records.get(ObjectKind::Attachment, uuid).unwrap();
            assert_eq!(attachment["related_object"], "job");
            assert!(records
                .get(ObjectKind::Job, attachment["related_object_uuid"].as_str().unwrap())
                .is_some());
        }
    }
}
