use polystore::prelude::*;

#[derive(Enum, Debug, Clone, Copy, PartialEq)]
pub enum Tier {
    Gold,
    Bronze,
}

#[derive(Model)]
pub struct Member {
    #[model(primary_key)]
    pub id: i64,
    pub tier: Tier,
    pub points: i32,
}

fn main() {
    // Selecting is fine; comparing an enum-valued expression is not.
    let earned = || case_when(Member::POINTS.ge(500), lit(Tier::Gold)).otherwise(lit(Tier::Bronze));
    let _ = Member::query().select(earned());
    let _ = Member::query().filter(earned().eq(Member::TIER));
}
