// Held-out tables from a third generator, @faker-js/faker (npm): its own name, street,
// city, postcode, company and phone data, written by other people than Python Faker's and
// mimesis's. Called by bench/heldout_fakerjs.py; prints the tables as JSON.
//
//   node bench/fakerjs_tables.mjs '{"locales": ["de_CH"], "rows": 15, "seed": 77717}'
//
// Labels use bench/heldout.py's vocabulary: tags a column holds, and tags it may be given
// without counting as wrong (``ignore``: a street address also names a town).
import { allFakers } from '@faker-js/faker';

const ADDRESS_PARTS = ['PII.Location', 'PII.PostalCode', 'PII.PersonName'];
const BLOOD_TYPES = ['A+', 'A-', 'B+', 'B-', 'AB+', 'AB-', 'O+', 'O-'];

function column(name, values, tags = [], dataType = 'text', ignore = []) {
  return { name, data_type: dataType, values, tags, ignore };
}

function isoDate(date) {
  return date.toISOString().slice(0, 10);
}

function tables(locale, rows, seed) {
  const faker = allFakers[locale];
  faker.seed(seed);
  const people = Array.from({ length: rows }, () => {
    const firstName = faker.person.firstName();
    const lastName = faker.person.lastName();
    return {
      firstName,
      lastName,
      born: isoDate(faker.date.birthdate({ mode: 'age', min: 18, max: 90 })),
      admitted: isoDate(faker.date.past({ years: 3 })),
      mobile: faker.phone.number(),
      email: faker.internet.email({ firstName, lastName }),
      street: faker.location.streetAddress(),
      zip: faker.location.zipCode(),
      city: faker.location.city(),
    };
  });
  const of = (key) => people.map((person) => person[key]);
  const many = (make) => Array.from({ length: rows }, make);
  const patients = {
    source: `fakerjs:${locale}`,
    name: 'patients',
    columns: [
      column('patient_no', many(() => faker.string.numeric(7))),
      column('given_name', of('firstName'), ['PII.PersonName']),
      column('family_name', of('lastName'), ['PII.PersonName']),
      column('date_of_birth', of('born'), ['PII.DateOfBirth'], 'date'),
      column('admitted_on', of('admitted'), [], 'date'),
      column('mobile', of('mobile'), ['PII.Phone']),
      column('email', of('email'), ['PII.Email']),
      column('street_address', of('street'), ['PII.Address'], 'text', ADDRESS_PARTS),
      column('zip_code', of('zip'), ['PII.PostalCode']),
      column('city', of('city'), ['PII.Location']),
      column('blood_type', many(() => faker.helpers.arrayElement(BLOOD_TYPES))),
      column('ward', many(() => `W-${faker.number.int({ min: 1, max: 40 })}`)),
    ],
  };
  const vendors = {
    source: `fakerjs:${locale}`,
    name: 'vendors',
    columns: [
      column('vendor', many(() => faker.company.name()), ['PII.Organization']),
      column('contact_person', many(() => faker.person.fullName()), ['PII.PersonName']),
      column('office_phone', many(() => faker.phone.number()), ['PII.Phone']),
      column('product', many(() => faker.commerce.productName())),
      column('department', many(() => faker.commerce.department())),
      column('buyer_role', many(() => faker.person.jobTitle())),
      column('unit_price', many(() => Number(faker.commerce.price())), [], 'numeric'),
    ],
  };
  return [patients, vendors];
}

const { locales, rows, seed } = JSON.parse(process.argv[2]);
const result = locales.flatMap((locale, index) => tables(locale, rows, seed + index));
process.stdout.write(JSON.stringify(result));
